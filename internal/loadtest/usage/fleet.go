package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// conn is one proxy connection the tool reports for, with one route session.
type conn struct {
	id, session string
	// sent is the cumulative bytes (rx+tx) of the newest report entry built for it;
	// accepted the largest such total the API answered 200 for. A failed POST leaves
	// sent > accepted (some of its signals may still have gone out).
	sent, accepted atomic.Int64
}

// fleet is what the tool created: a device and its connections.
type fleet struct {
	device string
	conns  []*conn
}

// createFleet creates a device and n connections on it, conc at a time. The fleet it returns
// holds whatever was created, also on error, so that it can be deleted.
func createFleet(ctx context.Context, api *client, n int, limit int64, conc int) (*fleet, error) {
	f := &fleet{}
	var dev struct {
		Device struct {
			ID string `json:"id"`
		} `json:"device"`
	}
	name := fmt.Sprintf("usage-load-%d", time.Now().Unix())
	if _, err := api.call(ctx, http.MethodPost, "/api/v1/devices", map[string]string{"name": name}, &dev); err != nil {
		return f, err
	}
	f.device = dev.Device.ID
	var (
		mu    sync.Mutex // guards f.conns
		start = time.Now()
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range n {
		g.Go(func() error {
			var out struct {
				Connection struct {
					ID string `json:"id"`
				} `json:"connection"`
			}
			_, err := api.call(gctx, http.MethodPost, "/api/v1/connections", map[string]any{"device_id": f.device,
				"name": fmt.Sprintf("%s-%d", name, i), "protocol": "openvpn", "bandwidth_limit": limit}, &out)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			f.conns = append(f.conns, &conn{id: out.Connection.ID, session: uuid.NewString()})
			if k := len(f.conns); k%250 == 0 || k == n {
				fmt.Printf("  %d/%d connections (%v)\n", k, n, time.Since(start).Round(time.Second))
			}
			return nil
		})
	}
	return f, g.Wait()
}

// delete deletes the fleet's connections (which tells their quota workflows to end), conc at
// a time, then the device.
func (f *fleet) delete(ctx context.Context, api *client, conc int) error {
	if f.device == "" {
		return nil
	}
	var failed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, c := range f.conns {
		g.Go(func() error {
			if _, err := api.call(gctx, http.MethodDelete, "/api/v1/connections/"+c.id, nil, nil); err != nil {
				failed.Add(1)
			}
			return nil
		})
	}
	g.Wait()
	_, err := api.call(ctx, http.MethodDelete, "/api/v1/devices/"+f.device, nil, nil)
	if n := failed.Load(); n > 0 {
		err = errors.Join(err, fmt.Errorf("%d connections were not deleted", n))
	}
	return err
}
