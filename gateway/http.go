package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cellgate/cellgate/gateway/httpproxy"
)

// serveHTTP serves one HTTP proxy client: one request, then the connection is closed.
// Refusals are answered as the table of refusal says; a request httpproxy refuses gets its
// *httpproxy.Error's status, a request slower than HeaderTimeout 408, a client that leaves
// before its first byte nothing.
func (s *Server) serveHTTP(ctx context.Context, sess *session) {
	c := sess.client
	c.SetReadDeadline(time.Now().Add(s.cfg.HeaderTimeout))
	br := bufio.NewReader(c)
	req, err := httpproxy.ReadRequest(br)
	if err != nil {
		s.httpReadFailed(c, err)
		return
	}
	g, ref := s.httpLogin(ctx, c, req)
	if ref == nil {
		var up net.Conn
		if up, ref = s.connect(ctx, sess, g, req.Host, req.Port); ref == nil {
			c.SetReadDeadline(time.Time{})
			s.httpForward(c, up, br, req)
			return
		}
	}
	httpproxy.WriteReply(c, ref.status, ref.msg, nil)
}

// httpReadFailed answers a request that could not be read.
func (s *Server) httpReadFailed(c net.Conn, err error) {
	var perr *httpproxy.Error
	var nerr net.Error
	switch {
	case errors.As(err, &perr):
		s.log.Debug("HTTP proxy request refused", slog.String("client", c.RemoteAddr().String()),
			slog.Int("status", perr.Status), slog.String("reason", perr.Msg))
		httpproxy.WriteReply(c, perr.Status, perr.Msg, nil)
	case errors.As(err, &nerr) && nerr.Timeout():
		httpproxy.WriteReply(c, http.StatusRequestTimeout, "request header timeout", nil)
	}
}

// httpLogin checks the request's credentials.
func (s *Server) httpLogin(ctx context.Context, c net.Conn, req *httpproxy.Request) (Grant, *refusal) {
	switch {
	case !req.HasAuth:
		return Grant{}, refuseNoAuth
	case req.User == "" || req.Password == "":
		return Grant{}, refuseWrongCredentials
	}
	return s.login(ctx, Login{Protocol: "http", Username: req.User, Password: req.Password, Source: sourceOf(c)})
}

// login asks the cache, then Logins, for the verdict on l.
func (s *Server) login(ctx context.Context, l Login) (Grant, *refusal) {
	g, err := s.cache.login(ctx, l, s.cfg.Logins.ProxyLogin)
	ref := loginRefusal(g, err)
	if ref != nil {
		s.log.Info("proxy login refused", slog.String("protocol", l.Protocol), slog.String("username", l.Username),
			slog.String("source", l.Source.String()), slog.String("code", g.Code), slog.Any("error", err))
	}
	return g, ref
}

// httpForward serves an opened request: a CONNECT becomes a tunnel (the bytes the client
// sent after its request first); an absolute-form request is written upstream and the
// response copied back until the origin closes.
func (s *Server) httpForward(c, up net.Conn, br *bufio.Reader, req *httpproxy.Request) {
	if req.Forward == nil {
		if httpproxy.WriteEstablished(c) != nil {
			return
		}
		if early := httpproxy.TakeBuffered(br); early != nil {
			if _, err := up.Write(early); err != nil {
				return
			}
		}
		pipe(c, up)
		return
	}
	if err := req.Forward.Write(up); err != nil {
		httpproxy.WriteReply(c, http.StatusBadGateway, "cannot send the request upstream", nil)
		return
	}
	io.Copy(c, up)
}
