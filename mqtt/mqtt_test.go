package mqtt

import (
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/hashicorp/raft"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/membership"
)

const token = "the-api-token"

// members is a fixed gossip view (the system tests run real membership).
type members map[string]membership.MemberState

func (m members) States() map[string]membership.MemberState { return m }
func (m members) OnChange(func()) func()                    { return func() {} }

// authorized is the API's rule with auth on and read_auth off.
func authorized(tok string, write bool) bool { return !write || tok == token }

func testBroker(t *testing.T) *Broker {
	t.Helper()
	f := fsm.New()
	cmd, err := fsm.NewCommand(fsm.CmdRegisterUnit, "", time.Now(), fsm.RegisterUnit{NodeID: "n1", Name: "worker1", Worker: true, RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.ApplyCommand(cmd); r.Err != nil {
		t.Fatal(r.Err)
	}
	cfg := DefaultConfig()
	cfg.Addr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	b, err := Start(cfg, Sources{FSM: f, Members: members{"n1": {Health: membership.HealthAlive}}, Authorized: authorized})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func connect(t *testing.T, url, password string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(t.Name() + password + url).SetAutoReconnect(false).SetConnectRetry(false)
	if password != "" {
		o.SetUsername("pioreactor").SetPassword(password)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// waitMessage subscribes to filter and waits for a message on topic with payload.
func waitMessage(t *testing.T, c paho.Client, filter, topic, payload string) {
	t.Helper()
	got := make(chan struct{})
	var once sync.Once
	tok := c.Subscribe(filter, 0, func(_ paho.Client, m paho.Message) {
		if m.Topic() == topic && string(m.Payload()) == payload {
			once.Do(func() { close(got) })
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s = %q", topic, payload)
	}
}

func TestRetainedStateOverTCPAndWebSocket(t *testing.T) {
	b := testBroker(t)
	for _, url := range []string{"tcp://" + b.Addr(), "ws://" + b.WSAddr() + "/"} {
		c, err := connect(t, url, "")
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		waitMessage(t, c, "pioreactor/#", "pioreactor/worker1/$experiment/monitor/$state", "ready")
	}
}

func TestWrongTokenRefusedAndAnonymousCannotPublish(t *testing.T) {
	b := testBroker(t)
	if _, err := connect(t, "tcp://"+b.Addr(), "not-the-token"); err == nil {
		t.Fatal("a wrong token connected")
	}
	anon, err := connect(t, "tcp://"+b.Addr(), "")
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := connect(t, "tcp://"+b.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 16)
	if tok := watcher.Subscribe("pioreactor/+/+/+/+/set", 0, func(_ paho.Client, m paho.Message) { seen <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	anon.Publish("pioreactor/worker1/exp/stirring/target_rpm/set", 0, false, "500").WaitTimeout(5 * time.Second)
	anon.Publish("pioreactor/worker1/exp/stirring/$state", 0, true, "lost").WaitTimeout(5 * time.Second)
	// The token holder's command passes (and ends the wait: the broker
	// handles one client's packets in order, so the anonymous one came first).
	watcher.Publish("pioreactor/worker1/exp/stirring/target_rpm/set", 0, false, "600").WaitTimeout(5 * time.Second)
	select {
	case topic := <-seen:
		if !strings.HasSuffix(topic, "/set") {
			t.Fatalf("unexpected %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the token holder's command was not passed on")
	}
	select {
	case topic := <-seen:
		t.Fatalf("a second command passed: %s", topic)
	default:
	}
}

func TestStartCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		b := testBroker(t)
		c, err := connect(t, "ws://"+b.WSAddr()+"/", "")
		if err != nil {
			t.Fatal(err)
		}
		waitMessage(t, c, "pioreactor/#", "pioreactor/worker1/$experiment/monitor/$state", "ready")
		c.Disconnect(0)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.Addr, cfg.WSAddr = ln.Addr().String(), ""
	if _, err := Start(cfg, Sources{FSM: fsm.New(), Members: members{}}); !errors.Is(err, ErrListen) {
		t.Fatalf("%v, want ErrListen", err)
	}
}

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	c.Addr = "1883"
	if err := c.Validate(); !errors.Is(err, ErrBadAddress) {
		t.Fatal(err)
	}
	c = DefaultConfig()
	c.MaxClients = 0
	if err := c.Validate(); !errors.Is(err, ErrBadLimit) {
		t.Fatal(err)
	}
	c = DefaultConfig()
	c.Addr, c.WSAddr = "", ""
	if b, err := Start(c, Sources{}); b != nil || err != nil {
		t.Fatalf("disabled: %v %v", b, err)
	}
}

func TestParseSet(t *testing.T) {
	if c, ok := parseSet("pioreactor/w1/exp/stirring/target_rpm/set"); !ok || c.unit != "w1" || c.setting != "target_rpm" {
		t.Fatal(c, ok)
	}
	for _, bad := range []string{"pioreactor/w1/exp/stirring/target_rpm", "pioreactor/+/exp/stirring/x/set", "other/w1/exp/stirring/x/set", "pioreactor/w1/exp/stirring/x/y/set"} {
		if _, ok := parseSet(bad); ok {
			t.Fatal(bad)
		}
	}
}

// A burst of job reports (a hundred workers starting, each sending its first
// report) costs a few full passes over the retained topics, not one per
// entry, and the last change still reaches the subscribers.
func TestJobReportsCoalesceIntoFewPasses(t *testing.T) {
	b := testBroker(t)
	c, err := connect(t, "tcp://"+b.Addr(), "")
	if err != nil {
		t.Fatal(err)
	}
	waitMessage(t, c, "pioreactor/worker1/#", "pioreactor/worker1/$experiment/monitor/$state", "ready")
	before := b.passes.Load()
	index := uint64(1)
	apply := func(typ fsm.CommandType, p any) { // as Raft applies an entry
		t.Helper()
		index++
		cmd, err := fsm.NewCommand(typ, "", time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := b.src.FSM.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(fsm.Result); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	const reports = 100
	for i := 0; i < reports; i++ {
		apply(fsm.CmdRecordReadings, fsm.RecordReadings{Readings: []fsm.Reading{}, Jobs: &fsm.JobsReport{NodeID: "n1", Jobs: []fsm.JobRecord{}}})
	}
	// Then a new unit, which only a pass publishes (not among the members: lost).
	apply(fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: "n2", Name: "worker2", Worker: true, RaftAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4"})
	waitMessage(t, c, "pioreactor/worker2/#", "pioreactor/worker2/$experiment/monitor/$state", "lost")
	if n := b.passes.Load() - before; n > 10 {
		t.Errorf("%d job reports and a new unit made %d full passes; want a few", reports, n)
	}
}

func TestPassEveryGrowsWithUnits(t *testing.T) {
	if got := passEvery(3); got != retainedPassEvery {
		t.Errorf("3 units: %v", got)
	}
	if got := passEvery(passUnits); got != retainedPassEvery {
		t.Errorf("%d units: %v", passUnits, got)
	}
	if got := passEvery(200); got != time.Second {
		t.Errorf("200 units: %v; want 1s", got)
	}
}

// A retained topic the broker published hours ago is still there for a
// dashboard that connects now: mochi's once-a-second sweep of expired
// retained messages keeps it (it deleted every retained message older than
// an hour while a maximum expiry was set).
func TestOldRetainedTopicsStay(t *testing.T) {
	b := testBroker(t)
	old := time.Now().Add(-2 * time.Hour).Unix()
	keep := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName: "pioreactor/worker1/exp/stirring/$state", Payload: []byte("ready"), Created: old}
	// A message of an MQTT 5 client with an expiry that passed: the sweep
	// drops it, which shows that a sweep ran.
	gone := keep
	gone.TopicName, gone.ProtocolVersion, gone.Expiry = "pioreactor/worker1/exp/stirring/expired", 5, old+1
	b.srv.Topics.RetainMessage(keep)
	b.srv.Topics.RetainMessage(gone)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := b.srv.Topics.Retained.Get(gone.TopicName); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mochi never swept the expired retained message")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := b.srv.Topics.Retained.Get(keep.TopicName); !ok {
		t.Fatal("the sweep deleted a retained topic published two hours ago")
	}
}
