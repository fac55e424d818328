package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// verifyGive is how long, after the load ended, a connection may take to show its last
// accepted total.
const verifyGive = time.Minute

// checkResult is the end-of-stage check of a sample of connections.
type checkResult struct {
	sample int
	// exact connections showed their last accepted total; partial showed more, but no more
	// than their last sent total (a POST that failed with some of its signals delivered);
	// behind still showed less when verifyGive ran out; wrong showed more than was ever sent,
	// or could not be read.
	exact, partial, behind, wrong int
	example                       string // one connection that was behind or wrong
	// drain is how long after the load ended the sample showed its figures.
	drain summary
}

func (c checkResult) ok() bool { return c.behind == 0 && c.wrong == 0 }

// verify asks the API for the usage of up to n connections spread over conns until each
// shows its last accepted total (or verifyGive after end has passed).
func verify(ctx context.Context, api *client, conns []*conn, n int, end time.Time) checkResult {
	n = min(n, len(conns))
	res := checkResult{sample: n}
	var (
		mu    sync.Mutex // guards res and drains
		drain []time.Duration
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 8)
	)
	for i := range n {
		c := conns[i*len(conns)/n]
		wg.Go(func() { // ends when c shows its total, or at the deadline
			sem <- struct{}{}
			defer func() { <-sem }()
			want, most := c.accepted.Load(), c.sent.Load()
			var used int64
			var err error
			for {
				used, err = api.used(ctx, c.id)
				if (err == nil && used >= want) || ctx.Err() != nil || time.Since(end) > verifyGive {
					break
				}
				time.Sleep(probePoll)
			}
			took := time.Since(end)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.wrong++
				res.example = fmt.Sprintf("connection %s: %v", c.id, err)
			case used == want:
				res.exact++
				drain = append(drain, took)
			case used > want && used <= most:
				res.partial++
				drain = append(drain, took)
			case used < want:
				res.behind++
				res.example = fmt.Sprintf("connection %s shows %d bytes after %v, want %d", c.id, used, verifyGive, want)
			default:
				res.wrong++
				res.example = fmt.Sprintf("connection %s shows %d bytes, more than the %d ever reported", c.id, used, most)
			}
		})
	}
	wg.Wait()
	res.drain = summarize(drain)
	return res
}
