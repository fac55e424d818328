// Command heartbeat is a load generator for the device heartbeat endpoint: it logs in as an
// operator, creates and enrolls a fleet of devices, and has a fixed number of workers send
// heartbeats as fast as the API answers (a closed loop) for a set time. It prints throughput
// and latency percentiles, then deletes the devices it created.
//
//	set -a; . .data/dev.env; set +a
//	go run ./loadtest/heartbeat -devices 200 -concurrency 32 -duration 30s
//
// It only sends traffic to a loopback API (this machine's).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var (
		apiURL      = flag.String("api", os.Getenv("CELLGATE_API_URL"), "API base URL [$CELLGATE_API_URL]")
		email       = flag.String("email", os.Getenv("CELLGATE_OPERATOR_EMAIL"), "operator email [$CELLGATE_OPERATOR_EMAIL]")
		password    = flag.String("password", os.Getenv("CELLGATE_OPERATOR_PASSWORD"), "operator password [$CELLGATE_OPERATOR_PASSWORD]")
		devices     = flag.Int("devices", 200, "devices to create and enroll")
		concurrency = flag.Int("concurrency", 32, "workers sending heartbeats, each waiting for its answer")
		duration    = flag.Duration("duration", 30*time.Second, "how long to measure (at most 10m)")
		warmup      = flag.Duration("warmup", 3*time.Second, "load before measuring starts")
	)
	flag.Parse()
	if err := run(*apiURL, *email, *password, *devices, *concurrency, *warmup, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "heartbeat:", err)
		os.Exit(1)
	}
}

func run(apiURL, email, password string, devices, concurrency int, warmup, duration time.Duration) error {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-api %q is not a URL", apiURL)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-api %s: only a loopback API may be load-tested", apiURL)
	}
	if duration <= 0 || duration > 10*time.Minute || devices < 1 || concurrency < 1 {
		return errors.New("need 1+ devices, 1+ workers and a duration up to 10m")
	}
	jar, _ := cookiejar.New(nil)
	httpc := &http.Client{
		Jar:       jar,
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
	}
	op := &operator{base: apiURL, http: httpc}
	if err := op.login(email, password); err != nil {
		return err
	}
	fmt.Printf("creating and enrolling %d devices\n", devices)
	ids, tokens, err := enroll(op, devices)
	defer func() {
		for _, id := range ids {
			op.call(http.MethodDelete, "/api/v1/devices/"+id, nil, nil)
		}
	}()
	if err != nil {
		return err
	}

	all, errs := measure(httpc, apiURL, tokens, concurrency, warmup, duration)
	if len(all) == 0 {
		return fmt.Errorf("no heartbeat succeeded (%d errors)", errs)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	fmt.Printf("heartbeats: %d in %v = %.0f/s, errors %d\n", len(all), duration, float64(len(all))/duration.Seconds(), errs)
	fmt.Printf("latency: p50 %v  p90 %v  p99 %v  max %v\n",
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), all[len(all)-1].Round(10*time.Microsecond))
	return nil
}

// enroll creates and enrolls n devices and returns their ids and device tokens; after a
// failure, the ids of those created, which the caller deletes.
func enroll(op *operator, n int) (ids, tokens []string, err error) {
	for i := range n {
		var created struct {
			Device struct {
				ID string `json:"id"`
			} `json:"device"`
			EnrollmentToken string `json:"enrollment_token"`
		}
		if err := op.call(http.MethodPost, "/api/v1/devices", map[string]string{"name": fmt.Sprintf("load-%d", i)}, &created); err != nil {
			return ids, tokens, err
		}
		ids = append(ids, created.Device.ID)
		var enrolled struct {
			DeviceToken string `json:"device_token"`
		}
		if err := op.call(http.MethodPost, "/api/v1/device/enroll", map[string]string{"enrollment_token": created.EnrollmentToken}, &enrolled); err != nil {
			return ids, tokens, err
		}
		tokens = append(tokens, enrolled.DeviceToken)
	}
	return ids, tokens, nil
}

// measure has concurrency workers send heartbeats as the devices of tokens, each waiting for
// its answer, for warmup + duration. It returns the latencies of the heartbeats answered 204
// after the warm-up, and the number of failed ones.
func measure(httpc *http.Client, apiURL string, tokens []string, concurrency int, warmup, duration time.Duration) ([]time.Duration, int64) {
	body := []byte(`{"battery":87,"charging":false,"signal_dbm":-91,"carrier":"Example Mobile","network_type":"LTE","cellular_ip":"100.64.12.34","app_version":"1.4.2"}`)
	var (
		measuring atomic.Bool
		errs      atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex // guards all
		all       []time.Duration
	)
	ctx, cancel := context.WithTimeout(context.Background(), warmup+duration)
	defer cancel()
	time.AfterFunc(warmup, func() { measuring.Store(true) })
	fmt.Printf("%d workers, %v warm-up, measuring %v\n", concurrency, warmup, duration)
	for w := range concurrency {
		wg.Add(1)
		go func() { // exits when ctx ends
			defer wg.Done()
			var lat []time.Duration
			for i := w; ctx.Err() == nil; i += concurrency {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/api/v1/device/heartbeat", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := httpc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if ctx.Err() != nil {
					break
				}
				if err != nil || resp.StatusCode != http.StatusNoContent {
					errs.Add(1)
					continue
				}
				if measuring.Load() {
					lat = append(lat, time.Since(start))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs.Load()
}

// operator is an API client logged in with a session cookie.
type operator struct {
	base string
	http *http.Client
	csrf string
}

func (o *operator) login(email, password string) error {
	var out struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := o.call(http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password}, &out); err != nil {
		return fmt.Errorf("login as %s: %w", email, err)
	}
	o.csrf = out.CSRFToken
	return nil
}

func (o *operator) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, o.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", o.csrf)
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s = %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
