package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's own example message.
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specUnix   = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// independentSig computes the signature without the package's code: HMAC-SHA256 keyed with
// the base64-decoded secret over "{id}.{timestamp}.{body}".
func independentSig(t *testing.T, secret, id string, unix int64, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("decode secret %q: %v", secret, err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(unix, 10) + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSignKnownAnswer(t *testing.T) {
	if got := independentSig(t, specSecret, specID, specUnix, specBody); got != specSig {
		t.Fatalf("independent HMAC = %q, want the spec's %q", got, specSig)
	}
	got, err := Sign(specSecret, specID, time.Unix(specUnix, 0), []byte(specBody))
	if err != nil {
		t.Fatalf("Sign(spec vector) error: %v", err)
	}
	if got != specSig {
		t.Errorf("Sign(spec vector) = %q, want %q", got, specSig)
	}
}

func TestSignFormat(t *testing.T) {
	secret := NewSecret()
	ts := time.Date(2025, 3, 1, 12, 0, 0, 999_000_000, time.UTC) // sub-second part is dropped
	body := []byte(`{"type":"device.offline","data":{"device_id":"d1"}}`)
	got, err := Sign(secret, "evt_1", ts, body)
	if err != nil {
		t.Fatalf("Sign error: %v", err)
	}
	raw, ok := strings.CutPrefix(got, "v1,")
	if !ok {
		t.Fatalf("Sign = %q, want prefix \"v1,\"", got)
	}
	mac, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(mac) != sha256.Size {
		t.Fatalf("Sign = %q: base64 part decodes to %d bytes (err %v), want %d", got, len(mac), err, sha256.Size)
	}
	if want := independentSig(t, secret, "evt_1", ts.Unix(), string(body)); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(specUnix, 0)
	const tol = 5 * time.Minute
	ts := strconv.FormatInt(specUnix, 10)
	otherSecret := NewSecret()
	otherSig, err := Sign(otherSecret, specID, now, []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		secret, id, ts  string
		sigs, body      string
		now             time.Time
		wantOK          bool
		wantErrIs       error
		wantErrContains string
	}{
		{name: "valid", secret: specSecret, id: specID, ts: ts, sigs: specSig, body: specBody, now: now, wantOK: true},
		{name: "valid at edge of tolerance (past)", secret: specSecret, id: specID, ts: ts, sigs: specSig, body: specBody, now: now.Add(tol), wantOK: true},
		{name: "valid at edge of tolerance (future)", secret: specSecret, id: specID, ts: ts, sigs: specSig, body: specBody, now: now.Add(-tol), wantOK: true},
		{name: "one of several signatures", secret: specSecret, id: specID, ts: ts, sigs: "v1,AAAA " + otherSig + " v1a,xyz " + specSig, body: specBody, now: now, wantOK: true},
		{name: "changed body", secret: specSecret, id: specID, ts: ts, sigs: specSig, body: `{"test": 2432232315}`, now: now},
		{name: "changed id", secret: specSecret, id: specID + "x", ts: ts, sigs: specSig, body: specBody, now: now},
		{name: "changed timestamp", secret: specSecret, id: specID, ts: strconv.FormatInt(specUnix+1, 10), sigs: specSig, body: specBody, now: now},
		{name: "wrong secret", secret: otherSecret, id: specID, ts: ts, sigs: specSig, body: specBody, now: now},
		{name: "too old", secret: specSecret, id: specID, ts: ts, sigs: specSig, body: specBody, now: now.Add(tol + time.Second), wantErrContains: "away from now"},
		{name: "too far in the future", secret: specSecret, id: specID, ts: ts, sigs: specSig, body: specBody, now: now.Add(-tol - time.Second), wantErrContains: "away from now"},
		{name: "timestamp not a number", secret: specSecret, id: specID, ts: "yesterday", sigs: specSig, body: specBody, now: now, wantErrContains: "not a Unix time"},
		{name: "wrong version", secret: specSecret, id: specID, ts: ts, sigs: "v2," + strings.TrimPrefix(specSig, "v1,"), body: specBody, now: now},
		{name: "no signature", secret: specSecret, id: specID, ts: ts, sigs: "", body: specBody, now: now},
		{name: "only non-matching signatures", secret: specSecret, id: specID, ts: ts, sigs: "v1,!!! v1 " + otherSig, body: specBody, now: now},
		{name: "bad secret", secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: specID, ts: ts, sigs: specSig, body: specBody, now: now, wantErrIs: ErrBadSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.id, tc.ts, tc.sigs, []byte(tc.body), tc.now, tol)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("Verify(%q, %q, %q, %q) = %v, want nil", tc.secret, tc.id, tc.ts, tc.sigs, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify(%q, %q, %q, %q) = nil, want an error", tc.secret, tc.id, tc.ts, tc.sigs)
			}
			if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
				t.Errorf("Verify error = %v, want it to wrap %v", err, tc.wantErrIs)
			}
			if tc.wantErrContains != "" && !strings.Contains(err.Error(), tc.wantErrContains) {
				t.Errorf("Verify error = %q, want it to contain %q", err, tc.wantErrContains)
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	secret := NewSecret()
	now := time.Now()
	body := []byte(`{"type":"webhook.test"}`)
	sig, err := Sign(secret, "evt_rt", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(secret, "evt_rt", strconv.FormatInt(now.Unix(), 10), sig, body, now, time.Minute); err != nil {
		t.Errorf("Verify(Sign(...)) = %v, want nil", err)
	}
}

func TestNewSecret(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		s := NewSecret()
		raw, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Fatalf("NewSecret() = %q, want prefix whsec_", s)
		}
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || len(key) != 32 {
			t.Fatalf("NewSecret() = %q: decodes to %d bytes (err %v), want 32", s, len(key), err)
		}
		if seen[s] {
			t.Fatalf("NewSecret() returned %q twice", s)
		}
		seen[s] = true
		if _, err := Sign(s, "id", time.Now(), nil); err != nil {
			t.Fatalf("Sign with NewSecret() %q: %v", s, err)
		}
	}
}

func TestBadSecret(t *testing.T) {
	for _, secret := range []string{
		"",
		"whsec_",
		"whsec_not base64!",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", // truncated: not valid base64
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",      // no prefix
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	} {
		if _, err := Sign(secret, "id", time.Now(), []byte("{}")); !errors.Is(err, ErrBadSecret) {
			t.Errorf("Sign(%q) error = %v, want ErrBadSecret", secret, err)
		}
		now := time.Now()
		if err := Verify(secret, "id", strconv.FormatInt(now.Unix(), 10), "v1,AAAA", []byte("{}"), now, time.Minute); !errors.Is(err, ErrBadSecret) {
			t.Errorf("Verify(%q) error = %v, want ErrBadSecret", secret, err)
		}
	}
}
