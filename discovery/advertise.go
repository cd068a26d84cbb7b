package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// mDNS's IPv4 group and port (RFC 6762).
var group = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

const (
	// maxPacket is the largest mDNS message read (RFC 6762 §17).
	maxPacket = 9000
	// maxQuestions is how many questions of one query are answered.
	maxQuestions = 16
	// maxRepliesPerSecond bounds what a flood of queries makes this node send.
	maxRepliesPerSecond = 50
	// statusTTL is how long the TXT records are kept before being asked again.
	statusTTL = time.Second
)

// Status is what a node says about itself in its TXT records.
type Status struct {
	Version, Model string
	// Worker: the node has a bioreactor (--worker).
	Worker bool
	// Standalone: the node is a cluster of one.
	Standalone bool
	// Fresh: the node would accept an invitation (see membership).
	Fresh bool
}

// Self is the node an Advertiser announces.
type Self struct {
	// Unit is the node's name; NAME.local is the SRV target.
	Unit string
	// IP and Port are where its HTTP API is reached.
	IP   net.IP
	Port int
	// Status is asked (at most once a second) when a query comes.
	Status func() Status
}

// Advertiser answers mDNS queries for this node's Service until Close.
type Advertiser struct {
	self Self
	pc   net.PacketConn
	p    *ipv4.PacketConn
	log  *slog.Logger

	mu      sync.Mutex // guards the zone cache and the reply budget
	zone    *mdns.MDNSService
	txt     string
	asked   time.Time
	second  time.Time
	replies int

	wg   sync.WaitGroup
	once sync.Once
}

// Advertise starts answering queries for Service about self on UDP 5353,
// sharing the port with any other responder (avahi-daemon) that allows it.
// It returns an error wrapping ErrListen when the port cannot be shared or no
// interface can join the mDNS group.
func Advertise(cfg Config, self Self) (*Advertiser, error) {
	if self.IP.To4() == nil || self.Port < 1 || self.Port > 65535 || self.Status == nil {
		return nil, fmt.Errorf("discovery: advertise needs an IPv4 address, a port and a status (got %v:%d)", self.IP, self.Port)
	}
	ifaces, err := cfg.interfaces()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrListen, err)
	}
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("%w: no interface is up, multicast and with an IPv4 address", ErrListen)
	}
	lc := net.ListenConfig{Control: shareable}
	pc, err := lc.ListenPacket(context.Background(), "udp4", group.String())
	if err != nil {
		return nil, fmt.Errorf("%w on UDP %s: %v (does a responder hold it without SO_REUSEADDR?)", ErrListen, group, err)
	}
	p := ipv4.NewPacketConn(pc)
	var joined []string
	for i := range ifaces {
		if err := p.JoinGroup(&ifaces[i], group); err == nil {
			joined = append(joined, ifaces[i].Name)
		}
	}
	if len(joined) == 0 {
		pc.Close()
		return nil, fmt.Errorf("%w: no interface could join the mDNS group %s", ErrListen, group.IP)
	}
	_ = p.SetMulticastTTL(255)
	_ = p.SetMulticastLoopback(true) // other programs of this host browse too
	if err := p.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		pc.Close()
		return nil, fmt.Errorf("%w: %v", ErrListen, err)
	}
	a := &Advertiser{self: self, pc: pc, p: p, log: cfg.logger().With("mdns", Service)}
	a.log.Debug("advertising", "unit", self.Unit, "interfaces", joined)
	a.wg.Add(1)
	go a.serve()
	return a, nil
}

// shareable lets the socket share UDP 5353 with other mDNS responders, as
// avahi-daemon and Go's own multicast listeners do.
func shareable(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Close stops answering and waits until the responder has stopped.
func (a *Advertiser) Close() error {
	a.once.Do(func() {
		_ = a.pc.Close()
		a.wg.Wait()
	})
	return nil
}

func (a *Advertiser) serve() {
	defer a.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, cm, from, err := a.p.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.log.Debug("read", "error", err)
			continue
		}
		src, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		var q dns.Msg
		if q.Unpack(buf[:n]) != nil || q.Response || q.Opcode != dns.OpcodeQuery || q.Rcode != 0 {
			continue // not a query (answers of other responders included)
		}
		a.answer(&q, cm, src)
	}
}

// answer replies to a query with the records it asks for, if any: by
// unicast to a one-shot querier (source port not 5353: RFC 6762 §6.7, as
// hashicorp/mdns's client) or one that asked so, else to the group on the
// interface the query came in on.
func (a *Advertiser) answer(q *dns.Msg, cm *ipv4.ControlMessage, src *net.UDPAddr) {
	zone := a.currentZone()
	var answers []dns.RR
	unicast := src.Port != group.Port
	for i, question := range q.Question {
		if i == maxQuestions {
			break
		}
		recs := zone.Records(question)
		if len(recs) > 0 && question.Qclass&(1<<15) != 0 {
			unicast = true
		}
		answers = append(answers, recs...)
	}
	if len(answers) == 0 || !a.budget() {
		return
	}
	resp := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}, Compress: true, Answer: answers}
	dst := group
	if unicast {
		resp.Id, resp.Question, dst = q.Id, q.Question[:min(len(q.Question), maxQuestions)], src
	}
	b, err := resp.Pack()
	if err != nil {
		a.log.Warn("cannot pack an mDNS answer", "error", err)
		return
	}
	var out *ipv4.ControlMessage
	if cm != nil && !unicast {
		out = &ipv4.ControlMessage{IfIndex: cm.IfIndex}
	}
	if _, err := a.p.WriteTo(b, out, dst); err != nil {
		a.log.Debug("answer", "to", dst, "error", err)
	}
}

// budget reports whether one more reply fits in this second's budget.
func (a *Advertiser) budget() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if now.Sub(a.second) >= time.Second {
		a.second, a.replies = now, 0
	}
	a.replies++
	return a.replies <= maxRepliesPerSecond
}

// currentZone is the node's records, made again when its status changed.
func (a *Advertiser) currentZone() *mdns.MDNSService {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.zone != nil && time.Since(a.asked) < statusTTL {
		return a.zone
	}
	a.asked = time.Now()
	txt := TXT(a.self.Unit, a.self.Status())
	key := fmt.Sprint(txt)
	if a.zone != nil && key == a.txt {
		return a.zone
	}
	z, err := mdns.NewMDNSService(a.self.Unit, Service, "local.", a.self.Unit+".local.", a.self.Port, []net.IP{a.self.IP.To4()}, txt)
	if err != nil { // cannot happen with the checks of Advertise
		a.log.Warn("cannot make mDNS records", "error", err)
		if a.zone != nil {
			return a.zone
		}
		z = &mdns.MDNSService{}
	}
	a.zone, a.txt = z, key
	return z
}

// TXT is the TXT records of a node: what it is, nothing secret.
func TXT(unit string, st Status) []string {
	return []string{"txtvers=1", "app=pio", "unit=" + unit, "version=" + cut(st.Version, 100), "model=" + cut(st.Model, 100),
		"worker=" + bit(st.Worker), "standalone=" + bit(st.Standalone), "fresh=" + bit(st.Fresh)}
}

func bit(b bool) string { return strconv.Itoa(map[bool]int{false: 0, true: 1}[b]) }

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
