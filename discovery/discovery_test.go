package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func testConfig() Config {
	c := DefaultConfig()
	c.BrowseTimeout = 500 * time.Millisecond
	return c
}

// eventually retries f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not true within %s: %v", what, within, err)
}

// avahiLike opens UDP 5353 as avahi-daemon does (0.0.0.0, SO_REUSEADDR and
// SO_REUSEPORT, the group joined on pio0), or, with share false, as a
// responder that shares it with nobody.
func avahiLike(t *testing.T, share bool) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{}
	if share {
		lc.Control = shareable
	}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
	if err != nil {
		t.Fatalf("open 5353 as avahi does: %v", err)
	}
	ifi, err := net.InterfaceByName("pio0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ipv4.NewPacketConn(pc).JoinGroup(ifi, group); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

type status struct{ v atomic.Pointer[Status] }

func newStatus(s Status) *status { st := &status{}; st.v.Store(&s); return st }
func (s *status) get() Status    { return *s.v.Load() }

// Two nodes advertise beside an avahi-like responder on 5353; a browse
// finds both, with what they say of themselves, and the avahi-like socket
// sees the query too (the port is shared both ways). A change of status
// shows in the next browses; once closed, nothing is left running and
// nothing answers.
func TestAdvertiseAndBrowse(t *testing.T) {
	if inMulticastNetns(t) {
		return
	}
	before := runtime.NumGoroutine()
	avahi := avahiLike(t, true)
	alpha := newStatus(Status{Version: "1.2.3", Model: "pioreactor_40ml", Worker: true, Standalone: true, Fresh: true})
	beta := newStatus(Status{Version: "1.2.3", Model: "pioreactor_20ml", Worker: true})
	cfg := testConfig()
	a, err := Advertise(cfg, Self{Unit: "alpha", IP: net.ParseIP("10.77.0.1"), Port: 8080, Status: alpha.get})
	if err != nil {
		t.Fatalf("advertise alpha beside avahi: %v", err)
	}
	defer a.Close()
	b, err := Advertise(cfg, Self{Unit: "beta", IP: net.ParseIP("10.77.0.2"), Port: 8081, Status: beta.get})
	if err != nil {
		t.Fatalf("advertise beta: %v", err)
	}
	defer b.Close()

	br := NewBrowser(cfg)
	nodes, err := br.Browse(context.Background())
	if err != nil {
		t.Fatalf("browse: %v", err)
	}
	want := []Node{
		{Unit: "alpha", IPv4Address: "10.77.0.1", Address: "10.77.0.1:8080", Version: "1.2.3", Model: "pioreactor_40ml", Worker: true, Standalone: true, Fresh: true},
		{Unit: "beta", IPv4Address: "10.77.0.2", Address: "10.77.0.2:8081", Version: "1.2.3", Model: "pioreactor_20ml", Worker: true},
	}
	if !reflect.DeepEqual(nodes, want) {
		t.Fatalf("browse found %+v, want %+v", nodes, want)
	}
	// avahi's socket received the browse's query (one multicast, every listener).
	_ = avahi.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, maxPacket)
	for {
		n, err := avahi.Read(buf)
		if err != nil {
			t.Fatalf("the avahi-like socket saw no query for %s: %v", Service, err)
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) == nil && !m.Response && len(m.Question) > 0 && m.Question[0].Name == Service+".local." {
			break
		}
	}

	// avahi-browse asks from 5353: the answer goes to the group, where avahi hears it.
	q := new(dns.Msg)
	q.SetQuestion(Service+".local.", dns.TypePTR)
	q.Id = 0
	qb, _ := q.Pack()
	if _, err := avahi.WriteTo(qb, group); err != nil {
		t.Fatalf("query from 5353: %v", err)
	}
	_ = avahi.SetReadDeadline(time.Now().Add(3 * time.Second))
	for heard := false; !heard; {
		n, from, err := avahi.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no multicast answer to a query from port 5353: %v", err)
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) != nil || !m.Response || len(m.Question) != 0 { // a multicast answer carries no question
			continue
		}
		for _, rr := range m.Answer {
			if ptr, ok := rr.(*dns.PTR); ok && ptr.Ptr == "alpha."+Service+".local." && from.(*net.UDPAddr).Port == 5353 {
				heard = true
			}
		}
	}

	alpha.v.Store(&Status{Version: "1.2.4", Model: "pioreactor_40ml", Worker: true}) // alpha joined a cluster
	eventually(t, 10*time.Second, "alpha's new status is advertised", func() error {
		nodes, err := br.Browse(context.Background())
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Unit == "alpha" && !n.Standalone && !n.Fresh && n.Version == "1.2.4" {
				return nil
			}
		}
		return fmt.Errorf("found %+v", nodes)
	})

	a.Close()
	b.Close()
	eventually(t, 10*time.Second, "no answer once closed", func() error {
		nodes, err := br.Browse(context.Background())
		if err != nil || len(nodes) != 0 {
			return fmt.Errorf("found %+v (%v)", nodes, err)
		}
		return nil
	})
	br.Close()
	if _, err := br.Browse(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("browse after close: %v", err)
	}
	eventually(t, 5*time.Second, "no goroutine left", func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before", n, before)
		}
		return nil
	})
}

// A responder that holds 5353 and shares it with nobody: Advertise says
// ErrListen (the node goes on without mDNS), and works once it is gone.
func TestAdvertiseOnATakenPort(t *testing.T) {
	if inMulticastNetns(t) {
		return
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 0) })
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
	if err != nil {
		t.Fatal(err)
	}
	self := Self{Unit: "alpha", IP: net.ParseIP("10.77.0.1"), Port: 8080, Status: func() Status { return Status{} }}
	if a, err := Advertise(testConfig(), self); !errors.Is(err, ErrListen) || !strings.Contains(err.Error(), "5353") {
		if a != nil {
			a.Close()
		}
		t.Fatalf("advertise on a port held without sharing: %v, want ErrListen naming 5353", err)
	}
	pc.Close()
	a, err := Advertise(testConfig(), self)
	if err != nil {
		t.Fatalf("advertise once the port is free: %v", err)
	}
	a.Close()
	cfg := testConfig()
	cfg.Interface = "nosuch0"
	if _, err := Advertise(cfg, self); !errors.Is(err, ErrListen) {
		t.Fatalf("advertise on an unknown interface: %v", err)
	}
}

// What a node tells strangers: what it is, never a secret.
func TestTXTSaysWhatANodeIsAndNoMore(t *testing.T) {
	got := TXT("alpha", Status{Version: "v1", Model: "pioreactor_40ml", Worker: true, Standalone: true})
	want := []string{"txtvers=1", "app=pio", "unit=alpha", "version=v1", "model=pioreactor_40ml", "worker=1", "standalone=1", "fresh=0"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TXT %v, want %v", got, want)
	}
}

// Answers that are not a pio node are not listed: Pioreactor's own workers
// (no app=pio), bad names, no IPv4 address or port.
func TestNodeOfRejectsWhatIsNotAPioNode(t *testing.T) {
	ok := &mdns.ServiceEntry{AddrV4: net.ParseIP("10.0.0.5"), Port: 8080, InfoFields: TXT("w1", Status{Standalone: true, Fresh: true})}
	if n, good := nodeOf(ok); !good || n.Unit != "w1" || n.Address != "10.0.0.5:8080" || !n.Fresh {
		t.Fatalf("a pio node: %+v %v", n, good)
	}
	for name, e := range map[string]*mdns.ServiceEntry{
		"pioreactor's worker": {AddrV4: net.ParseIP("10.0.0.5"), Port: 4999},
		"bad name":            {AddrV4: net.ParseIP("10.0.0.5"), Port: 8080, InfoFields: TXT("../x", Status{})},
		"reserved name":       {AddrV4: net.ParseIP("10.0.0.5"), Port: 8080, InfoFields: TXT("localhost", Status{})},
		"no address":          {Port: 8080, InfoFields: TXT("w1", Status{})},
		"no port":             {AddrV4: net.ParseIP("10.0.0.5"), InfoFields: TXT("w1", Status{})},
	} {
		if n, good := nodeOf(e); good {
			t.Errorf("%s listed: %+v", name, n)
		}
	}
	if err := (Config{BrowseTimeout: 0, MaxResults: 1}).Validate(); err == nil {
		t.Error("a zero browse timeout is valid")
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}
