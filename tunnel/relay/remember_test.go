package relay

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
)

// TestControlReconnectKeepsUsage is TestRouteRemembersConnectionAfterLastRoute through the
// control API, as the API drives it: DELETE /clients, then POST /clients with the API's lower
// figure answers with the relay's.
func TestControlReconnectKeepsUsage(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	body := clientBody("10.9.0.2", conn, dev, `,"limit":5000,"used":0,"epoch":1`)
	if rec := f.do(http.MethodPost, "/clients", body); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	used := exhaust(r)
	if rec := f.do(http.MethodDelete, "/clients/10.9.0.2", ""); rec.Code != http.StatusOK {
		t.Fatalf("DELETE /clients/10.9.0.2 = %d %s", rec.Code, rec.Body.String())
	}
	rec := f.do(http.MethodPost, "/clients", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients again = %d %s", rec.Code, rec.Body.String())
	}
	if got := decodeAnswer(t, rec); got["used"] != float64(used) || got["limit"] != 5000.0 {
		t.Errorf("POST /clients again with used 0 = %v, want used %d (the relay's figure), limit 5000", got, used)
	}
	r, _ = f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	if r.Admit(int(5000-used)+1, accounting.ToClient) {
		t.Errorf("Admit past the limit after a reconnect = true, want false; snapshot %+v", r.Quota.Snapshot())
	}
}

// TestControlChangesRememberedConnection: a cutoff, a lift, a new limit or a reset made while
// the customer is away reaches the remembered connection, and the next route goes on from it;
// GET /stats lists it as not routed.
func TestControlChangesRememberedConnection(t *testing.T) {
	f := newControlFixture(t)
	conn, dev := uuid.New(), uuid.New()
	body := func(used string, epoch int) string {
		return clientBody("10.9.0.2", conn, dev, `,"limit":5000,"used":`+used+`,"epoch":`+strconv.Itoa(epoch))
	}
	if rec := f.do(http.MethodPost, "/clients", body("0", 1)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ := f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	used := exhaust(r)
	f.do(http.MethodDelete, "/clients/10.9.0.2", "")

	base := "/connections/" + conn.String()
	rec := f.do(http.MethodPost, base+"/block", "")
	if m := decodeAnswer(t, rec); rec.Code != http.StatusOK || m["blocked"] != true || m["used"] != float64(used) {
		t.Fatalf("POST block of a remembered connection = %d %v, want 200, blocked, used %d", rec.Code, m, used)
	}
	var stats control.Stats
	if err := json.Unmarshal(f.do(http.MethodGet, "/stats", "").Body.Bytes(), &stats); err != nil {
		t.Fatal(err)
	}
	want := control.ConnectionStats{ConnectionID: conn, Epoch: 1, Used: used, Limit: 5000, Blocked: true, RxBytes: used, RefusedPackets: 1}
	if stats.Routes != 0 || len(stats.Connections) != 1 || stats.Connections[0] != want {
		t.Errorf("GET /stats with one remembered connection = routes %d, %+v, want 0 routes, [%+v]", stats.Routes, stats.Connections, want)
	}
	if rec := f.do(http.MethodPost, "/clients", body("0", 1)); rec.Code != http.StatusCreated {
		t.Fatalf("POST /clients = %d %s", rec.Code, rec.Body.String())
	}
	r, _ = f.routes.Lookup(netip.MustParseAddr("10.9.0.2"))
	if !r.Quota.Blocked() {
		t.Error("a connection blocked while remembered, routed again under the same limit: not blocked, want blocked")
	}
	f.do(http.MethodDelete, "/clients/10.9.0.2", "")

	// The limit is raised and the cutoff lifted while the customer is away.
	if rec := f.do(http.MethodPost, base+"/limit", `{"limit":8000}`); rec.Code != http.StatusOK {
		t.Fatalf("POST limit of a remembered connection = %d %s", rec.Code, rec.Body.String())
	}
	if rec := f.do(http.MethodPost, base+"/unblock", ""); rec.Code != http.StatusOK {
		t.Fatalf("POST unblock of a remembered connection = %d %s", rec.Code, rec.Body.String())
	}
	if c, _ := f.routes.Quota(conn); c.Blocked() || c.Limit() != 8000 {
		t.Errorf("remembered connection after limit 8000 and unblock = %+v, want unblocked with limit 8000", c.Snapshot())
	}

	// A reset while away: the connection is in the new epoch; the API's older epoch is stale.
	rec = f.do(http.MethodPost, base+"/reset", `{"epoch":2}`)
	if m := decodeAnswer(t, rec); rec.Code != http.StatusOK || m["reset"] != true {
		t.Fatalf("POST reset of a remembered connection = %d %v, want 200, reset true", rec.Code, m)
	}
	wantControlError(t, "POST /clients in epoch 1 after a reset to 2 while away", f.do(http.MethodPost, "/clients", body("0", 1)),
		http.StatusConflict, "stale_epoch", "epoch")
	rec = f.do(http.MethodPost, "/clients", body("0", 2))
	if m := decodeAnswer(t, rec); rec.Code != http.StatusCreated || m["used"] != 0.0 || m["epoch"] != 2.0 {
		t.Errorf("POST /clients in epoch 2 = %d %v, want 201, used 0, epoch 2", rec.Code, m)
	}
}

// exhaust sends full packets to the client until the route refuses one; it returns the bytes
// admitted.
func exhaust(r *accounting.Route) int64 {
	var n int64
	for r.Admit(1400, accounting.ToClient) {
		n += 1400
	}
	return n
}
