package accounting

import (
	"net/netip"
	"testing"

	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/google/uuid"
)

// TestLimitReached: a connection is reached when a packet is refused under its current
// limit; raising the limit clears that until a packet is refused under the new one, and a
// new epoch starts clear. Routes report it with the relay's limit.
func TestLimitReached(t *testing.T) {
	var routes RouteTable
	conn := uuid.New()
	r, err := routes.Add(control.Registration{ClientIP: netip.MustParseAddr("10.9.0.9"), ConnectionID: conn, DeviceID: uuid.New(),
		SessionID: uuid.New(), Limit: 1000, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Quota
	check := func(step string, want bool) {
		t.Helper()
		if got := c.Snapshot().LimitReached; got != want {
			t.Errorf("%s: Snapshot().LimitReached = %v, want %v", step, got, want)
		}
		if u := r.Usage(); u.LimitReached != want || u.Limit != c.Limit() {
			t.Errorf("%s: Usage() = %+v, want LimitReached %v and Limit %d", step, u, want, c.Limit())
		}
	}
	r.Admit(900, ToClient)
	check("900 of 1000 used", false)
	if r.Admit(200, ToClient) {
		t.Fatal("a packet crossing the limit was admitted")
	}
	check("a 200-byte packet refused at 900 of 1000", true)
	c.SetLimit(2000)
	check("the limit raised to 2000", false)
	r.Admit(1000, FromClient)
	check("1900 of 2000 used", false)
	r.Admit(500, FromClient)
	check("a packet refused under the new limit", true)
	c.Block()
	c.SetLimit(3000)
	r.Admit(10, ToClient)
	check("blocked: refusals are not the limit's", false)
	c.Unblock()
	c.SetLimit(100)
	r.Admit(10, ToClient)
	check("lowered below the usage: the next packet is refused", true)
	if _, ok := c.Reset(2); !ok {
		t.Fatal("Reset(2) refused")
	}
	check("a new epoch", false)
	c.SetLimit(0)
	r.Admit(1<<20, ToClient)
	check("unlimited", false)
}
