package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/cellgate/cellgate/gateway/socks5"
)

// serveSOCKS serves one SOCKS5 client: greeting, username/password login, one request.
// Only CONNECT is served: BIND is refused with CommandNotSupported, and so is UDP ASSOCIATE,
// whose relaying is a later step of issue #18. A handshake slower than HeaderTimeout, a
// wrong version or a broken message is closed without a reply.
func (s *Server) serveSOCKS(ctx context.Context, sess *session) {
	c := sess.client
	c.SetReadDeadline(time.Now().Add(s.cfg.HeaderTimeout))
	g, refused, ok := s.socksLogin(ctx, c)
	if !ok {
		return
	}
	req, err := socks5.ReadRequest(c)
	if err != nil {
		if rep, ok := socks5.ReplyFor(err); ok {
			socks5.WriteReply(c, rep, netip.AddrPort{})
		}
		return
	}
	if refused != nil {
		socks5.WriteReply(c, refused.reply, netip.AddrPort{})
		return
	}
	if req.Command != socks5.Connect {
		socks5.WriteReply(c, socks5.CommandNotSupported, netip.AddrPort{})
		return
	}
	host := req.Addr.Name
	if req.Addr.IP.IsValid() {
		host = req.Addr.IP.String()
	}
	up, ref := s.connect(ctx, sess, g, host, req.Addr.Port)
	if ref != nil {
		socks5.WriteReply(c, ref.reply, netip.AddrPort{})
		return
	}
	c.SetReadDeadline(time.Time{})
	if socks5.WriteReply(c, socks5.Succeeded, boundOf(up)) != nil {
		return
	}
	pipe(c, up)
}

// socksLogin reads the greeting and the username/password login, and answers them. It
// returns the verdict and true when the request is to be read next: for an allowed login, and
// also for a login refused other than by RFC 1929's failure status (quota exceeded, device
// offline, the API unreachable, …), whose request gets that refusal's reply. False: the
// connection is to be closed.
func (s *Server) socksLogin(ctx context.Context, c net.Conn) (Grant, *refusal, bool) {
	methods, err := socks5.ReadGreeting(c)
	switch {
	case errors.Is(err, socks5.ErrNoMethods):
		socks5.WriteMethod(c, socks5.NoAcceptable)
		return Grant{}, nil, false
	case err != nil:
		return Grant{}, nil, false
	case !slices.Contains(methods, socks5.UserPass):
		socks5.WriteMethod(c, socks5.NoAcceptable)
		return Grant{}, nil, false
	}
	if socks5.WriteMethod(c, socks5.UserPass) != nil {
		return Grant{}, nil, false
	}
	user, pass, err := socks5.ReadUserPass(c)
	if errors.Is(err, socks5.ErrEmptyCredential) {
		socks5.WriteUserPassStatus(c, false)
		return Grant{}, nil, false
	}
	if err != nil {
		return Grant{}, nil, false
	}
	g, ref := s.login(ctx, Login{Protocol: "socks5", Username: user, Password: pass, Source: sourceOf(c)})
	if ref != nil && ref.authFailed {
		socks5.WriteUserPassStatus(c, false)
		return Grant{}, nil, false
	}
	if socks5.WriteUserPassStatus(c, true) != nil {
		return Grant{}, nil, false
	}
	return g, ref, true
}

// boundOf is the local address of up, the BND.ADDR and BND.PORT of a CONNECT's reply.
func boundOf(up net.Conn) netip.AddrPort {
	if ta, ok := up.LocalAddr().(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}
