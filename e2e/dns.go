//go:build e2e

package e2e

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSPort is the port of ServeDNS's server.
const DNSPort = 53

// DNSServer is a resolver in the internet namespace that knows one name, and who asked.
type DNSServer struct {
	// Addr is where it answers (ServerAddr:53).
	Addr netip.AddrPort

	mu   sync.Mutex // guards from
	from []netip.Addr
}

// Askers returns the source addresses of the queries it answered.
func (d *DNSServer) Askers() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.Addr(nil), d.from...)
}

// ServeDNS starts a DNS server in the internet namespace on ServerAddr:53 that answers A
// queries for name (e.g. "phone-only.example.") with ServerAddr and NXDOMAIN for anything
// else; no other resolver knows the name. It stops when the test ends.
func (top *Topology) ServeDNS(tb testing.TB, name string) *DNSServer {
	tb.Helper()
	pc, err := top.Internet.ListenPacket("udp", net.JoinHostPort(ServerAddr, "53"))
	if err != nil {
		tb.Fatalf("e2e: serve dns: %v", err)
	}
	d := &DNSServer{Addr: netip.AddrPortFrom(netip.MustParseAddr(ServerAddr), DNSPort)}
	done := make(chan struct{})
	go func() { // owner: the test; exits when the cleanup closes pc
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			if answer, ok := d.answer(buf[:n], name); ok {
				d.record(from)
				_, _ = pc.WriteTo(answer, from)
			}
		}
	}()
	tb.Cleanup(func() {
		pc.Close()
		<-done
	})
	return d
}

func (d *DNSServer) record(from net.Addr) {
	if ap, err := netip.ParseAddrPort(from.String()); err == nil {
		d.mu.Lock()
		d.from = append(d.from, ap.Addr().Unmap())
		d.mu.Unlock()
	}
}

// answer is the reply to the query q: ServerAddr for an A question of name, NXDOMAIN for any
// other (an empty NOERROR for other types of name).
func (d *DNSServer) answer(q []byte, name string) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	question, err := p.Question()
	if err != nil {
		return nil, false
	}
	known := strings.EqualFold(question.Name.String(), name)
	rcode := dnsmessage.RCodeSuccess
	if !known {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: rcode})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	if known && question.Type == dnsmessage.TypeA {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.AResource{A: netip.MustParseAddr(ServerAddr).As4()})
	}
	out, err := b.Finish()
	return out, err == nil
}
