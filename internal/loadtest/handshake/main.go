// Command handshake measures the relay's handshake path under a flood (issue #15): how many
// valid handshakes a second a relay completes for real devices while junk initiations under
// random keys arrive at a given rate, and how much relay CPU the junk costs.
//
//	go run ./loadtest/handshake -junk 5000 -devices 100 -every 1s -duration 10s
//
// It starts the relay in a child process of its own (this command with -serve: a
// relay.DataPlane on 127.0.0.1 with an in-memory TUN and the devices' keys in a map), so the
// relay's CPU time is measured apart from the load generator's. Valid devices send from
// 127.0.1.x, one address each, each starting a handshake every -every (a handshake counts as
// completed when its response comes within a second; a cookie reply is answered at once, as
// the agent does); the junk comes from 127.0.0.2–6 and, like the strongest attacker, carries
// a valid mac1 and takes the cookies the relay sends under load. It prints one table row:
// code, junk/s sent, devices, handshakes started/s, completed/s, share completed, p99
// latency, relay CPU (cores), relay CPU µs per junk initiation. Only loopback addresses are
// used.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.zx2c4.com/wireguard/device"

	"github.com/cellgate/cellgate/tunnel/accounting"
	"github.com/cellgate/cellgate/tunnel/control"
	"github.com/cellgate/cellgate/tunnel/relay"
	"github.com/cellgate/cellgate/tunnel/tuntest"
	"github.com/cellgate/cellgate/tunnel/wire"
)

// directory is the relay's Directory: the devices' keys, fixed at start.
type directory map[wire.PublicKey]relay.Device

func (d directory) LookupKey(_ context.Context, k wire.PublicKey) (relay.Device, error) {
	if dev, ok := d[k]; ok {
		return dev, nil
	}
	return relay.Device{}, relay.ErrUnknownKey
}

func (d directory) Gone(context.Context, []relay.Device) ([]uuid.UUID, error) { return nil, nil }

// hasMACs is false on a tree from before issue #15, whose initiations end without MACs, so
// that this file also measures the relay as it was (BENCHMARKS.md, "before").
const hasMACs = wire.InitiationSize >= 141

func main() {
	var (
		serve    = flag.Bool("serve", false, "run the relay (internal: the measuring process starts it)")
		junk     = flag.Int("junk", 5000, "junk initiations a second, spread over the junk addresses")
		addrs    = flag.Int("junk-addrs", 5, "junk source addresses (127.0.0.2 onwards), 1..50")
		devices  = flag.Int("devices", 100, "valid devices, each handshaking every -every, 0..200")
		every    = flag.Duration("every", time.Second, "how often each valid device starts a handshake")
		duration = flag.Duration("duration", 10*time.Second, "how long to measure")
		pool     = flag.Int("pool", 4000, "distinct junk initiations (random keys), sent round-robin")
	)
	flag.Parse()
	if *serve {
		if err := runRelay(); err != nil {
			fmt.Fprintln(os.Stderr, "handshake -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *addrs < 1 || *addrs > 50 || *devices < 0 || *devices > 200 || *duration <= 0 || *junk < 0 || *every <= 0 {
		fmt.Fprintln(os.Stderr, "handshake: need 1..50 junk addresses, 0..200 devices, a duration and junk ≥ 0")
		os.Exit(2)
	}
	if err := measure(*junk, *addrs, *devices, *pool, *every, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "handshake:", err)
		os.Exit(1)
	}
}

// setup is what the measuring process tells the relay process on its stdin.
type setup struct {
	Key     wire.PrivateKey
	Devices []wire.PublicKey
}

// report is what the relay process prints when its stdin closes.
type report struct {
	CPU      time.Duration    `json:"cpu"`
	Counters control.Counters `json:"counters"`
}

// runRelay is the child: it reads the setup, serves, prints its address, and when its stdin
// closes prints its CPU time and counters.
func runRelay() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return err
	}
	var s setup
	if err := json.Unmarshal(line, &s); err != nil {
		return err
	}
	key, err := wire.NewKeyPair(s.Key)
	if err != nil {
		return err
	}
	dir := directory{}
	for i, k := range s.Devices {
		dir[k] = relay.Device{ID: uuid.New(), Key: k, TunnelIP: netip.AddrFrom4([4]byte{100, 72, 1, byte(i + 2)})}
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	tun := tuntest.New(64)
	plane, err := relay.NewDataPlane(relay.DataPlaneConfig{Key: key, TUN: tun, Conn: conn, Routes: &accounting.RouteTable{}, Directory: dir})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- plane.Run(ctx) }()
	fmt.Println(conn.LocalAddr().String())
	io.Copy(io.Discard, in) // until the parent closes stdin
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	counters := plane.Counters()
	cancel()
	tun.Close()
	<-done
	return json.NewEncoder(os.Stdout).Encode(report{CPU: cpu, Counters: counters})
}

// measure starts the relay, floods it while the devices handshake, and prints the row.
func measure(junk, addrs, devices, poolSize int, every, duration time.Duration) error {
	relayKey, err := wire.GenerateKeyPair(nil)
	if err != nil {
		return err
	}
	keys := make([]wire.KeyPair, devices)
	s := setup{Key: relayKey.Private}
	for i := range keys {
		if keys[i], err = wire.GenerateKeyPair(nil); err != nil {
			return err
		}
		s.Devices = append(s.Devices, keys[i].Public)
	}
	pool, err := junkPool(relayKey.Public, poolSize)
	if err != nil {
		return err
	}
	child, relayAddr, err := startRelay(s)
	if err != nil {
		return err
	}
	defer child.kill()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent, joined atomic.Int64
	var st stats
	measuring := atomic.Bool{}
	for i, k := range keys {
		d, err := newValidDevice(k, relayKey.Public, relayAddr, i)
		if err != nil {
			cancel()
			return err
		}
		wg.Go(func() { d.run(ctx, every, &st, &joined, &measuring) })
	}
	for i := range addrs {
		f, err := newJunk(pool, relayKey.Public, relayAddr, i)
		if err != nil {
			cancel()
			return err
		}
		wg.Go(func() { f.run(ctx, junk/addrs, &sent, &measuring) })
	}
	// Measure once every device has handshaken (the relay knows them all) and the load settled.
	for deadline := time.Now().Add(30 * time.Second); joined.Load() < int64(devices) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cpu0, err := processCPU(child.cmd.Process.Pid)
	if err != nil {
		cancel()
		return err
	}
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, err := processCPU(child.cmd.Process.Pid)
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	rep, err := child.finish()
	if err != nil {
		return err
	}
	printRow(sent.Load(), devices, &st, cpu1-cpu0, elapsed)
	fmt.Fprintf(os.Stderr, "relay counters: %+v\n", rep.Counters)
	return nil
}

// printRow prints the table row of a run that lasted elapsed.
func printRow(junk int64, devices int, st *stats, relayCPU, elapsed time.Duration) {
	success := "—"
	if st.attempts > 0 {
		success = fmt.Sprintf("%.1f %%", 100*float64(len(st.completed))/float64(st.attempts))
	}
	fmt.Printf("| %s | %.0f | %d | %.0f | %.0f | %s | %v | %.2f | %s |\n",
		map[bool]string{true: "after", false: "before"}[hasMACs], float64(junk)/elapsed.Seconds(),
		devices, float64(st.attempts)/elapsed.Seconds(), float64(len(st.completed))/elapsed.Seconds(), success,
		st.p99().Round(100*time.Microsecond), relayCPU.Seconds()/elapsed.Seconds(), perJunk(relayCPU, junk))
}

// perJunk is the relay's CPU time per junk initiation, in µs ("—" without junk).
func perJunk(cpu time.Duration, junk int64) string {
	if junk == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", float64(cpu.Microseconds())/float64(junk))
}

// processCPU is pid's user and system CPU time so far, from /proc (10 ms resolution).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

type relayProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startRelay(s setup) (*relayProcess, netip.AddrPort, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	cmd := exec.Command(self, "-serve")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, netip.AddrPort{}, err
	}
	p := &relayProcess{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	if err := json.NewEncoder(stdin).Encode(s); err != nil {
		p.kill()
		return nil, netip.AddrPort{}, err
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		p.kill()
		return nil, netip.AddrPort{}, fmt.Errorf("relay did not start: %w", err)
	}
	addr, err := netip.ParseAddrPort(strings.TrimSpace(line))
	return p, addr, err
}

// finish closes the relay's stdin and reads its report.
func (p *relayProcess) finish() (report, error) {
	p.stdin.Close()
	var r report
	err := json.NewDecoder(p.out).Decode(&r)
	p.cmd.Wait()
	return r, err
}

func (p *relayProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// validDevice handshakes back to back from its own loopback address.
type validDevice struct {
	key   wire.KeyPair
	relay wire.PublicKey
	to    netip.AddrPort
	conn  *net.UDPConn
	macs  device.CookieGenerator
}

func newValidDevice(key wire.KeyPair, relay wire.PublicKey, to netip.AddrPort, i int) (*validDevice, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))})
	if err != nil {
		return nil, err
	}
	d := &validDevice{key: key, relay: relay, to: to, conn: conn}
	d.macs.Init(device.NoisePublicKey(relay))
	return d, nil
}

// run handshakes every every (from a random phase) until ctx ends, like a device that
// retries or re-keys, and records each attempt while measuring: completed within a second,
// resent at once after a cookie reply, or failed. joined counts the devices that completed
// one.
func (d *validDevice) run(ctx context.Context, every time.Duration, st *stats, joined *atomic.Int64, measuring *atomic.Bool) {
	defer d.conn.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	time.Sleep(time.Duration(rand.Int64N(int64(every))))
	first := true
	for index := uint32(1); ctx.Err() == nil; index++ {
		start := time.Now()
		ok := d.handshake(index)
		if ok && first {
			first = false
			joined.Add(1)
		}
		if measuring.Load() {
			st.record(ok, time.Since(start))
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// handshake sends an initiation and reports whether it completed within a second; a cookie
// reply makes it send the initiation again at once, with mac2.
func (d *validDevice) handshake(index uint32) bool {
	h, pkt, err := wire.InitiateHandshake(nil, d.key, d.relay, index, time.Now())
	if err != nil {
		return false
	}
	if hasMACs {
		d.macs.AddMacs(pkt)
	}
	d.conn.WriteToUDPAddrPort(pkt, d.to)
	d.conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2048)
	for {
		n, _, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return false
		}
		p, drop := wire.ParsePacket(buf[:n])
		if drop != wire.DropNone {
			continue
		}
		if hasMACs && takeCookie(&d.macs, p) {
			d.macs.AddMacs(pkt)
			d.conn.WriteToUDPAddrPort(pkt, d.to)
			continue
		}
		if _, drop := h.Complete(p, time.Now()); drop == wire.DropNone {
			return true
		}
	}
}

// stats are the devices' handshake attempts while measuring. mu guards all of it.
type stats struct {
	mu        sync.Mutex
	attempts  int
	completed []time.Duration
}

func (s *stats) record(ok bool, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if ok {
		s.completed = append(s.completed, took)
	}
}

// p99 is the 99th percentile of the completed handshakes' latency.
func (s *stats) p99() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.completed) == 0 {
		return 0
	}
	slices.Sort(s.completed)
	return s.completed[len(s.completed)*99/100]
}

// takeCookie gives a cookie reply's cookie to g and reports whether p was one.
func takeCookie(g *device.CookieGenerator, p wire.Packet) bool {
	if p.Type != wire.PacketType(5) || len(p.Body) != 56 { // PacketCookieReply
		return false
	}
	var msg device.MessageCookieReply
	msg.Receiver = p.Receiver
	copy(msg.Nonce[:], p.Body[:24])
	copy(msg.Cookie[:], p.Body[24:])
	return g.ConsumeReply(&msg)
}

// junkPool makes n initiations under fresh random keys no device has.
func junkPool(relay wire.PublicKey, n int) ([][]byte, error) {
	pool := make([][]byte, n)
	for i := range pool {
		k, err := wire.GenerateKeyPair(nil)
		if err != nil {
			return nil, err
		}
		if _, pool[i], err = wire.InitiateHandshake(nil, k, relay, uint32(i+1), time.Now()); err != nil {
			return nil, err
		}
	}
	return pool, nil
}

// junkSender floods from one address, taking the relay's cookies.
type junkSender struct {
	pool [][]byte
	to   netip.AddrPort
	conn *net.UDPConn
	macs device.CookieGenerator
}

func newJunk(pool [][]byte, relay wire.PublicKey, to netip.AddrPort, i int) (*junkSender, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(i+2))})
	if err != nil {
		return nil, err
	}
	j := &junkSender{pool: pool, to: to, conn: conn}
	j.macs.Init(device.NoisePublicKey(relay))
	return j, nil
}

func (j *junkSender) run(ctx context.Context, rate int, sent *atomic.Int64, measuring *atomic.Bool) {
	defer j.conn.Close()
	go func() { // ends when run closes the socket
		buf := make([]byte, 2048)
		for {
			n, _, err := j.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if p, drop := wire.ParsePacket(buf[:n]); drop == wire.DropNone && hasMACs {
				takeCookie(&j.macs, p)
			}
		}
	}()
	if rate == 0 {
		<-ctx.Done()
		return
	}
	start := time.Now()
	buf := make([]byte, 0, 256)
	for i := 0; ctx.Err() == nil; {
		for due := int(time.Since(start).Seconds() * float64(rate)); i < due; i++ {
			buf = append(buf[:0], j.pool[i%len(j.pool)]...)
			if hasMACs {
				j.macs.AddMacs(buf)
			}
			if _, err := j.conn.WriteToUDPAddrPort(buf, j.to); err == nil && measuring.Load() {
				sent.Add(1)
			}
		}
		time.Sleep(time.Millisecond)
	}
}
