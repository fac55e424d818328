package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// flags is a subcommand's flag set whose defaults come from environment variables, so every
// setting can be given either way; -h lists each flag with its variable.
type flags struct {
	*flag.FlagSet
	envErrs []error // environment values that did not parse
}

func newFlags(name, summary string) *flags {
	fs := flag.NewFlagSet("cellgate "+name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: cellgate %s [flags]\n\n%s\n\nFlags (each also read from the environment variable named):\n", name, summary)
		fs.PrintDefaults()
	}
	return &flags{FlagSet: fs}
}

func (f *flags) string(p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	f.StringVar(p, name, def, usage+" [$"+env+"]")
}

func (f *flags) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("$%s=%q is not a Go duration such as 90s or 2m", env, v))
		} else {
			def = d
		}
	}
	f.DurationVar(p, name, def, usage+" [$"+env+"]")
}

func (f *flags) int(p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("$%s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	f.IntVar(p, name, def, usage+" [$"+env+"]")
}

func (f *flags) bool(p *bool, name, env string, def bool, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("$%s=%q is not true or false", env, v))
		} else {
			def = b
		}
	}
	f.BoolVar(p, name, def, usage+" [$"+env+"]")
}

// optionalBool is a boolean flag that knows whether it was given, by the flag or its
// environment variable, so that its default can be worked out from other settings.
type optionalBool struct {
	value, set bool
}

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return "auto"
	}
	return strconv.FormatBool(b.value)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not true or false")
	}
	b.value, b.set = v, true
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

// or returns the value given, or def when none was.
func (b optionalBool) or(def bool) bool {
	if b.set {
		return b.value
	}
	return def
}

func (f *flags) optionalBool(p *optionalBool, name, env, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if err := p.Set(v); err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("$%s=%q is not true or false", env, v))
		}
	}
	f.Var(p, name, usage+" [$"+env+"]")
}

// parse parses args and reports environment values that did not parse. -h is errHelp.
func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see cellgate %s -h", f.Arg(0), strings.TrimPrefix(f.Name(), "cellgate "))
	}
	return errors.Join(f.envErrs...)
}

// common is the configuration every server subcommand shares.
type common struct {
	databaseURL       string
	temporalAddress   string
	temporalNamespace string
	logLevel          string
	logFormat         string
}

func (c *common) register(f *flags, temporal bool) {
	f.string(&c.databaseURL, "database-url", "DATABASE_URL", "", "Postgres URL, e.g. postgres://cellgate:secret@db:5432/cellgate (required)")
	if temporal {
		f.string(&c.temporalAddress, "temporal-address", "TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port")
		f.string(&c.temporalNamespace, "temporal-namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace")
	}
	f.string(&c.logLevel, "log-level", "CELLGATE_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.string(&c.logFormat, "log-format", "CELLGATE_LOG_FORMAT", "text", "log format: text or json")
}

func (c *common) check() error {
	if c.databaseURL == "" {
		return errors.New("DATABASE_URL (or -database-url) is required")
	}
	return nil
}

// logger builds the process logger on stderr.
func (c *common) logger() (*slog.Logger, error) {
	return newLogger(os.Stderr, c.logLevel, c.logFormat)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
}

// temporalOptions are the client options for the configured Temporal namespace. Temporal's
// own client chatter goes to the log at warn level and above.
func (c *common) temporalOptions(log *slog.Logger) client.Options {
	return client.Options{
		HostPort:  c.temporalAddress,
		Namespace: c.temporalNamespace,
		Logger:    tlog.NewStructuredLogger(slog.New(warnOnly{log.Handler()})),
	}
}

// warnOnly passes on records at warn level and above.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

// requiredEnv lists, per subcommand, the environment variables a container deployment must
// set: those without a default that works outside one machine. The compose file test checks
// temporal-compose.yml against it.
func requiredEnv(subcommand string) []string {
	switch subcommand {
	case "api", "worker":
		return []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
	case "migrate":
		return []string{"DATABASE_URL"}
	}
	return nil
}

func (h warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnOnly{h.Handler.WithAttrs(attrs)}
}

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }

// registerTunnelControl adds the flags naming the relay's control API; what says what it is
// used for.
func registerTunnelControl(f *flags, u, token *string, what string) {
	f.string(u, "tunnel-control-url", "CELLGATE_TUNNEL_CONTROL_URL", "", "the relay's control API (e.g. http://127.0.0.1:7401) "+what)
	f.string(token, "tunnel-control-token", "CELLGATE_TUNNEL_CONTROL_TOKEN", "", "bearer token of the relay's control API")
}

// registerInternalURL adds -internal-url, the API's internal listener that /internal/v1 is
// reached at, with def as its default (empty: none) and what it is used for; and -api, which
// named the API's public address before /internal/v1 moved to a listener of its own, to say
// so to whoever still gives it.
func registerInternalURL(f *flags, u *string, def, what string) {
	f.string(u, "internal-url", "CELLGATE_INTERNAL_URL", def, "the API's internal listener (CELLGATE_INTERNAL_LISTEN), e.g. http://10.0.0.5:8090, "+what)
	f.Func("api", "removed: see -internal-url", func(string) error {
		return errors.New("-api is gone: /internal/v1 is served only on the API's internal listener; give its URL as -internal-url (CELLGATE_INTERNAL_URL), e.g. http://10.0.0.5:8090")
	})
}

// checkInternalURL checks an -internal-url ("" passes: the caller decides whether it may be
// empty).
func checkInternalURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("CELLGATE_INTERNAL_URL (-internal-url) %q must be an http(s) URL", u)
	}
	return nil
}

// minSharedToken is the shortest internal or control token accepted: the internal token
// guards every operator's data, the relay's control token every route and cutoff. 32
// characters is 128 bits in hex; cellgate dev makes 64.
const minSharedToken = 32

// checkSharedToken checks a shared bearer token; what names its variable and flag.
func checkSharedToken(what, token string) error {
	if len(token) < minSharedToken || strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%s must be at least %d characters without spaces or control characters (make one with: openssl rand -hex 32)", what, minSharedToken)
	}
	return nil
}

// checkTunnelControl checks the relay control API's URL and token.
func checkTunnelControl(u, token string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("CELLGATE_TUNNEL_CONTROL_URL (-tunnel-control-url) %q must be an http(s) URL", u)
	}
	if token == "" {
		return errors.New("CELLGATE_TUNNEL_CONTROL_TOKEN (-tunnel-control-token) is required with a tunnel control URL")
	}
	return checkSharedToken("CELLGATE_TUNNEL_CONTROL_TOKEN (-tunnel-control-token)", token)
}
