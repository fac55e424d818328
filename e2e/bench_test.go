//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// iperfTime is how long each iperf3 run of BenchmarkTunnel sends, in whole seconds. A quick
// check: go test -tags e2e -run '^$' -bench BenchmarkTunnel -benchtime 1x ./e2e/ -args -iperf-time 2s
var iperfTime = flag.Duration("iperf-time", 10*time.Second, "BenchmarkTunnel: how long each iperf3 run sends (whole seconds)")

// workload is the traffic of one iperf3 run, from the client to the server.
type workload struct {
	name string
	// udpPayload is the payload of each UDP datagram (iperf3 -l); 0 means TCP.
	udpPayload int
}

// ipUDPHeaders is the size of the IPv4 and UDP headers in front of a UDP payload.
const ipUDPHeaders = 20 + 8

// tcpPayload is the payload of a full-sized TCP packet at the tunnels' MTU: IPv4 and TCP
// headers (20 + 20) and the timestamp option (12) take the rest.
const tcpPayload = mtu - 20 - 20 - 12

// workloads are BenchmarkTunnel's runs on each path: TCP at the path's MTU, and UDP as fast as
// iperf3 can send with 1400-byte and 64-byte IP packets.
var workloads = []workload{
	{name: "TCP"},
	{name: "UDP-1400", udpPayload: 1400 - ipUDPHeaders},
	{name: "UDP-64", udpPayload: 64 - ipUDPHeaders},
}

// BenchmarkTunnel measures the tunnel's throughput through the namespaces (issue #4,
// BENCHMARKS.md). For each path — cellgate (tunnel and agent), cellgate with
// --benchmark-no-accounting, and wireguard-go between the same namespaces at the same MTU —
// it builds a fresh topology and runs iperf3 from the client to the server once per workload
// (TCP, UDP-1400, UDP-64), and reports for each run:
//
//	Mbit/s         payload bit rate the server received
//	pkt/s          data packets the server received per second (TCP: received bytes / tcpPayload)
//	loss-%         UDP datagrams sent but not received
//	retrans/s      TCP segments the client retransmitted per second
//	tunnel-us/pkt  CPU time (user + system) of the relay's tunnel process per received data packet
//	agent-us/pkt   the same for the phone's end (cellgate agent, or the phone's wireguard-go)
//	tunnel-cpu-%   the relay process's CPU time over the run's wall time (100 = one core)
//	agent-cpu-%    the same for the phone's end
//
// The wireguard-go path is skipped when wg is missing or wireguard-go does not build. Run it
// on an otherwise idle machine, as root:
//
//	go test -tags e2e -run '^$' -bench BenchmarkTunnel -benchtime 1x -count 3 ./e2e/
func BenchmarkTunnel(b *testing.B) {
	paths := []struct {
		name  string
		start func(b *testing.B) *benchPath
	}{
		{"cellgate", func(b *testing.B) *benchPath { return startCellgate(b, true) }},
		{"cellgate-no-accounting", func(b *testing.B) *benchPath { return startCellgate(b, false) }},
		{"wireguard-go", startWireGuardPath},
	}
	for _, path := range paths {
		b.Run(path.name, func(b *testing.B) {
			p := path.start(b)
			for _, w := range workloads {
				b.Run(w.name, func(b *testing.B) { p.measure(b, w) })
			}
		})
	}
}

// benchPath is one tunnel under test in its own topology, carrying the client's traffic to the
// iperf3 server.
type benchPath struct {
	top *Topology
	// relay and phone are the processes at the tunnel's two ends, whose CPU time is measured.
	relay, phone *Proc
	// sent reads how many bytes the relay's end has sent into the tunnel toward the phone.
	sent func(ctx context.Context) (int64, error)
	// used reads the client connection's used bytes at the tunnel; nil when the path has no
	// accounting to check (wireguard-go).
	used func(ctx context.Context) (int64, error)
	// accounting is whether used must grow with the traffic (else it must stay put).
	accounting bool
}

// benchTopology builds a fresh topology with the iperf3 server and the HTTP server on the
// internet, and returns it with the HTTP server's URL.
func benchTopology(b *testing.B) (*Topology, string) {
	b.Helper()
	top := New(b)
	top.StartIperf3(b)
	return top, top.ServeHTTP(b)
}

// checkPath fails the benchmark unless the server sees the client's requests come from the
// phone's uplink address, i.e. through the tunnel.
func checkPath(b *testing.B, top *Topology, server string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := top.Client.Run(ctx, "curl", "-sS", "--noproxy", "*", "--max-time", "10", server+"/ip")
	if got := strings.TrimSpace(out); err != nil || got != PhoneUplink {
		b.Fatalf("curl %s/ip in the client = %q, %v, want the phone's uplink %s", server, got, err, PhoneUplink)
	}
}

// startWireGuardPath is the wireguard-go path in a fresh topology.
func startWireGuardPath(b *testing.B) *benchPath {
	b.Helper()
	wireguardGo(b) // skip before building a topology for nothing
	top, server := benchTopology(b)
	relay, phone, relayDev := startWireGuard(b, top)
	checkPath(b, top, server)
	return &benchPath{
		top: top, relay: relay, phone: phone,
		sent: func(ctx context.Context) (int64, error) { return wgSent(ctx, top.Relay, relayDev) },
	}
}

// measure runs workload w once over p and reports its metrics (see BenchmarkTunnel). It fails
// the benchmark if the server received nothing, if the relay's end did not send at least what
// the server received (the traffic went another way), or if the connection's used bytes did
// not follow the path's accounting setting.
func (p *benchPath) measure(b *testing.B, w workload) {
	ctx, cancel := context.WithTimeout(context.Background(), *iperfTime+time.Minute)
	defer cancel()
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average before the run: %s", strings.TrimSpace(string(load)))
	}
	// The counters are read outside the CPU time window: reading them costs the tunnel CPU.
	sent0, used0 := p.counters(ctx, b)
	others0 := otherCPU(ctx, p.top.Relay, p.relay.Pid())
	relay0, phone0 := p.cpuTimes(b)
	start := time.Now()
	r, err := runIperf3(ctx, p.top.Client, w, *iperfTime)
	wall := time.Since(start)
	relay1, phone1 := p.cpuTimes(b)
	others1 := otherCPU(ctx, p.top.Relay, p.relay.Pid())
	sent1, used1 := p.counters(ctx, b)
	if err != nil {
		b.Fatal(err)
	}

	pkts := r.Packets
	if w.udpPayload == 0 {
		pkts = r.Bytes / tcpPayload
	}
	if r.Bytes <= 0 || pkts <= 0 {
		b.Fatalf("iperf3 %s: the server received %.0f bytes, %.0f packets, want some", w.name, r.Bytes, pkts)
	}
	relayCPU, phoneCPU := relay1-relay0, phone1-phone0
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.BitsPerSecond/1e6, "Mbit/s")
	b.ReportMetric(pkts/r.Seconds, "pkt/s")
	if w.udpPayload > 0 {
		b.ReportMetric(r.LostPercent, "loss-%")
	} else {
		b.ReportMetric(r.Retransmits/r.Seconds, "retrans/s")
	}
	b.ReportMetric(float64(relayCPU.Microseconds())/pkts, "tunnel-us/pkt")
	b.ReportMetric(float64(phoneCPU.Microseconds())/pkts, "agent-us/pkt")
	b.ReportMetric(100*relayCPU.Seconds()/wall.Seconds(), "tunnel-cpu-%")
	b.ReportMetric(100*phoneCPU.Seconds()/wall.Seconds(), "agent-cpu-%")
	b.Logf("%s: %.1f s, server received %.0f bytes in %.0f packets; CPU: relay end %v, phone end %v, "+
		"other processes in the relay namespace %v; relay end sent %d bytes",
		w.name, r.Seconds, r.Bytes, pkts, relayCPU, phoneCPU, cpuSince(others0, others1), sent1-sent0)

	if sent := sent1 - sent0; float64(sent) < r.Bytes {
		b.Errorf("the relay's end sent %d bytes into the tunnel, want ≥ the %.0f bytes the server received", sent, r.Bytes)
	}
	if p.used == nil {
		return
	}
	switch used := used1 - used0; {
	case p.accounting && float64(used) < r.Bytes:
		b.Errorf("connection used grew by %d bytes, want ≥ the %.0f bytes the server received", used, r.Bytes)
	case !p.accounting && used != 0:
		b.Errorf("connection used grew by %d bytes with --benchmark-no-accounting, want 0", used)
	}
}

// counters reads the bytes the relay's end has sent into the tunnel and, when the path
// accounts, the connection's used bytes.
func (p *benchPath) counters(ctx context.Context, b *testing.B) (sent, used int64) {
	b.Helper()
	sent, err := p.sent(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if p.used != nil {
		if used, err = p.used(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return sent, used
}

// cpuTimes reads the CPU time the processes at the two ends have used so far.
func (p *benchPath) cpuTimes(b *testing.B) (relay, phone time.Duration) {
	b.Helper()
	relay, err := cpuTime(p.relay.Pid())
	if err != nil {
		b.Fatal(err)
	}
	if phone, err = cpuTime(p.phone.Pid()); err != nil {
		b.Fatal(err)
	}
	return relay, phone
}

// otherCPU returns the CPU time used so far by each process in ns other than pid (for
// cellgate, the dev stack: api and worker, Postgres, the Temporal dev server). It is for the
// log, so a failure leaves processes out.
func otherCPU(ctx context.Context, ns *Netns, pid int) map[int]time.Duration {
	cpu := map[int]time.Duration{}
	out, err := runCmd(exec.CommandContext(ctx, "ip", "netns", "pids", ns.Name))
	if err != nil {
		return cpu
	}
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil && p != pid {
			if d, err := cpuTime(p); err == nil {
				cpu[p] = d
			}
		}
	}
	return cpu
}

// cpuSince sums the CPU time the processes in both before and after used in between.
func cpuSince(before, after map[int]time.Duration) time.Duration {
	var sum time.Duration
	for p, d := range after {
		if d0, ok := before[p]; ok {
			sum += d - d0
		}
	}
	return sum
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat: sysconf(_SC_CLK_TCK), which
// is USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time, user plus system, that process pid has used so far, all its
// threads together.
func cpuTime(pid int) (time.Duration, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// Field 2, the command name, is in parentheses and may hold spaces and parentheses:
	// count the fields after its end. f[0] is field 3; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: unexpected /proc/%d/stat %q", pid, pid, stat)
	}
	utime, uerr := strconv.ParseInt(f[11], 10, 64)
	stime, serr := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(uerr, serr); err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// iperfResult is the receiver side of one iperf3 run: what the server got.
type iperfResult struct {
	// Seconds is how long the server received.
	Seconds float64
	// Bytes and BitsPerSecond count payload: UDP datagrams' or the TCP stream's.
	Bytes, BitsPerSecond float64
	// Packets is the UDP datagrams received, LostPercent those sent but not received; both
	// are 0 for TCP.
	Packets, LostPercent float64
	// Retransmits is the TCP segments the sender retransmitted; 0 for UDP.
	Retransmits float64
}

// runIperf3 runs the iperf3 client in ns against the server for d (whole seconds, at least
// one) with workload w, and returns the receiver side of its JSON report.
func runIperf3(ctx context.Context, ns *Netns, w workload, d time.Duration) (iperfResult, error) {
	args := []string{"-c", ServerAddr, "-p", strconv.Itoa(Iperf3Port), "--connect-timeout", "5000",
		"-t", strconv.Itoa(max(1, int(d.Seconds()))), "-J"}
	if w.udpPayload > 0 {
		args = append(args, "-u", "-b", "0", "-l", strconv.Itoa(w.udpPayload))
	}
	cmd := ns.Command(ctx, "iperf3", args...)
	out, err := cmd.Output() // -J: the report, or the error, is JSON on stdout
	r, perr := parseIperf3(out)
	if err != nil || perr != nil {
		return r, fmt.Errorf("iperf3 %s in %s: %w", strings.Join(args, " "), ns.Name, errors.Join(err, perr))
	}
	return r, nil
}

// parseIperf3 reads the receiver side of iperf3 3.x's JSON report (-J).
func parseIperf3(out []byte) (iperfResult, error) {
	var rep struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Seconds       float64 `json:"seconds"`
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
				Packets       float64 `json:"packets"`
				LostPackets   float64 `json:"lost_packets"`
				LostPercent   float64 `json:"lost_percent"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits float64 `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return iperfResult{}, fmt.Errorf("parse iperf3 report: %w", err)
	}
	if rep.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", rep.Error)
	}
	s := rep.End.SumReceived
	if s.Seconds <= 0 {
		return iperfResult{}, errors.New("parse iperf3 report: no end.sum_received")
	}
	return iperfResult{
		Seconds: s.Seconds, Bytes: s.Bytes, BitsPerSecond: s.BitsPerSecond,
		// iperf3's receiver counts the datagrams it expected (by sequence number) as packets.
		Packets: s.Packets - s.LostPackets, LostPercent: s.LostPercent,
		Retransmits: rep.End.SumSent.Retransmits,
	}, nil
}

// startCellgate starts cellgate in a fresh topology — `cellgate dev` and `cellgate tunnel`
// (with --benchmark-no-accounting unless accounting, and the production usage report interval, 15 s)
// in the relay namespace, `cellgate agent` in the phone namespace — and routes the client
// through an unlimited connection on the device.
func startCellgate(b *testing.B, accounting bool) *benchPath {
	b.Helper()
	top, server := benchTopology(b)
	args := []string{"--report-every", "15s", "--log-level", "info"}
	if !accounting {
		args = append(args, "--benchmark-no-accounting")
	}
	s := startStack(b, top, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	devID, agentProc := s.device(ctx, "bench-phone")
	s.waitLive(ctx, devID, 30*time.Second)
	connID := s.connection(ctx, devID, 0)
	s.route(ctx, connID, devID, 0, 0, 1)
	checkPath(b, top, server)
	return &benchPath{
		top: top, relay: s.tunnel, phone: agentProc, accounting: accounting,
		// These run on the sub-benchmarks' goroutines: they return errors, never fail b.
		sent: func(ctx context.Context) (int64, error) {
			st, err := s.readStats(ctx)
			return st.Counters.FromClientBytes, err
		},
		used: func(ctx context.Context) (int64, error) {
			st, err := s.readStats(ctx)
			if err != nil {
				return 0, err
			}
			for _, c := range st.Connections {
				if c.ConnectionID == connID {
					return c.Used, nil
				}
			}
			return 0, fmt.Errorf("tunnel stats have no connection %s", connID)
		},
	}
}

func TestCPUTime(t *testing.T) {
	start := rusageCPU(t)
	for deadline := time.Now().Add(10 * time.Second); rusageCPU(t) < start+100*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("could not burn 100 ms of CPU in 10 s")
		}
		for i := 0; i < 1_000_000; i++ {
			_ = strconv.Itoa(i)
		}
	}
	low := rusageCPU(t)
	got, err := cpuTime(os.Getpid())
	high := rusageCPU(t)
	if err != nil {
		t.Fatal(err)
	}
	// /proc counts user and system time in clock ticks, each rounded down, and splits the
	// precise total between them by sampling: allow three ticks.
	if got < low-3*clockTick || got > high {
		t.Errorf("cpuTime(self) = %v, want between getrusage's %v (less three ticks) and %v", got, low, high)
	}
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime(-1) = nil error, want one")
	}
}

// rusageCPU is this process's user plus system CPU time by getrusage(2).
func rusageCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestParseIperf3(t *testing.T) {
	for _, c := range []struct {
		name, report string
		want         iperfResult
		wantErr      bool
	}{
		{"udp", `{"end":{"sum_sent":{"seconds":1,"bytes":4867200,"packets":135200},
			"sum_received":{"seconds":2,"bytes":3106728,"bits_per_second":24850643,"packets":135086,"lost_packets":48788,"lost_percent":36.1}}}`,
			iperfResult{Seconds: 2, Bytes: 3106728, BitsPerSecond: 24850643, Packets: 86298, LostPercent: 36.1}, false},
		{"tcp", `{"end":{"sum_sent":{"retransmits":7},"sum_received":{"seconds":10,"bytes":1000,"bits_per_second":800}}}`,
			iperfResult{Seconds: 10, Bytes: 1000, BitsPerSecond: 800, Retransmits: 7}, false},
		{"error", `{"start":{},"error":"unable to connect to server"}`, iperfResult{}, true},
		{"no summary", `{"end":{}}`, iperfResult{}, true},
		{"not json", `iperf3: error`, iperfResult{}, true},
	} {
		got, err := parseIperf3([]byte(c.report))
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("parseIperf3(%s) = %+v, %v, want %+v, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
}
