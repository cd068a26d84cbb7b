package system

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/pioreactor/pio/agent"
)

// message is one MQTT message a recorder received, numbered in order.
type message struct {
	seq            int
	topic, payload string
}

// recorder keeps every message of a subscription and wakes its waiters.
type recorder struct {
	mu      sync.Mutex
	msgs    []message
	changed chan struct{}
}

func (r *recorder) add(topic, payload string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, message{seq: len(r.msgs), topic: topic, payload: payload})
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// mark is the number of messages received so far.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// await waits, woken by each message, until one from seq `from` on satisfies ok.
func (r *recorder) await(t *testing.T, within time.Duration, what string, from int, ok func(message) bool) message {
	t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		for _, m := range r.msgs[from:] {
			if ok(m) {
				r.mu.Unlock()
				return m
			}
		}
		from = len(r.msgs)
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("MQTT: no %s within %s", what, within)
		}
	}
}

func (r *recorder) saw(ok func(message) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if ok(m) {
			return true
		}
	}
	return false
}

func is(topic, payload string) func(message) bool {
	return func(m message) bool { return m.topic == topic && m.payload == payload }
}

// mqttClient connects a paho client to n's broker (password "" for anonymous).
func mqttClient(t *testing.T, n *testNode, id, password string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + n.a.MQTTAddr()).SetClientID(id).SetAutoReconnect(false)
	if password != "" {
		o.SetUsername("pioreactor").SetPassword(password)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect to %s: %v", n.cfg.Name, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func subscribeAll(t *testing.T, c paho.Client) *recorder {
	t.Helper()
	r := &recorder{changed: make(chan struct{})}
	tok := c.Subscribe("pioreactor/#", 0, func(_ paho.Client, m paho.Message) { r.add(m.Topic(), string(m.Payload())) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return r
}

// A dashboard subscribed to a follower's broker sees the whole cluster, a
// stranger's command does nothing while the token holder's changes the job,
// and the dashboard keeps receiving when the leader dies.
func TestMQTTOnAFollowerSeesTheClusterAndOutlivesTheLeader(t *testing.T) {
	nodes := startThree(t)
	l := leaderOf(t, nodes)
	f := follower(t, nodes)
	other := without(without(nodes, l), f)[0] // the worker that runs stirring
	sub := subscribeAll(t, mqttClient(t, f, "dashboard", ""))
	for _, n := range nodes {
		monitor := "pioreactor/" + n.cfg.Name + "/$experiment/monitor/"
		sub.await(t, 10*time.Second, n.cfg.Name+" ready", 0, is(monitor+"$state", "ready"))
		// Pioreactor's Inventory cards read the software version and the address here.
		sub.await(t, 10*time.Second, n.cfg.Name+" versions", 0, is(monitor+"versions", `{"app":"`+n.cfg.Version+`"}`))
		host, _, _ := net.SplitHostPort(n.a.HTTPAddr())
		sub.await(t, 10*time.Second, n.cfg.Name+" ipv4", 0, is(monitor+"ipv4", host))
	}

	createExperiment(t, f, "mq")
	for _, n := range nodes {
		mustCall(t, f, http.MethodPut, "/api/experiments/mq/workers", map[string]any{"pioreactor_unit": n.cfg.Name}, nil)
	}
	if _, res := runTask(t, f, http.MethodPost, "/api/workers/"+other.cfg.Name+"/jobs/run/job_name/stirring/experiments/mq",
		map[string]any{"options": map[string]any{"target_rpm": 400}}); res["status"] != "succeeded" {
		t.Fatalf("run stirring: %v", res)
	}
	stir := "pioreactor/" + other.cfg.Name + "/mq/stirring/"
	sub.await(t, 10*time.Second, "stirring ready", 0, is(stir+"$state", "ready"))
	sub.await(t, 10*time.Second, "target_rpm 400", 0, is(stir+"target_rpm", "400"))

	if _, res := runTask(t, f, http.MethodPost, "/api/workers/$broadcast/jobs/run/job_name/od_reading/experiments/mq",
		map[string]any{"options": map[string]any{"interval": 1}}); res["status"] != "succeeded" {
		t.Fatalf("run od_reading: %v", res)
	}
	odOf := func(n *testNode) func(message) bool {
		return func(m message) bool {
			if m.topic != "pioreactor/"+n.cfg.Name+"/mq/od_reading/od2" {
				return false
			}
			var r struct {
				Timestamp string   `json:"timestamp"`
				OD        *float64 `json:"od"`
				Channel   string   `json:"channel"`
				Angle     string   `json:"angle"`
			}
			return json.Unmarshal([]byte(m.payload), &r) == nil && r.OD != nil && r.Channel == "2" && r.Angle == "90" && strings.HasSuffix(r.Timestamp, "Z")
		}
	}
	for _, n := range nodes {
		sub.await(t, 15*time.Second, "an OD reading of "+n.cfg.Name, 0, odOf(n))
	}

	// A stranger's command is refused; the token holder's goes through the API.
	set := stir + "target_rpm/set"
	anon := mqttClient(t, f, "stranger", "")
	anon.Publish(set, 0, false, "700").WaitTimeout(5 * time.Second)
	owner := mqttClient(t, f, "owner", f.apiToken())
	owner.Publish(set, 0, false, "650").WaitTimeout(5 * time.Second)
	sub.await(t, 10*time.Second, "the owner's command", 0, is(set, "650"))
	sub.await(t, 15*time.Second, "target_rpm 650", 0, is(stir+"target_rpm", "650"))
	eventually(t, 10*time.Second, "target_rpm 650 through the API", func() error {
		if got := jobsOn(t, f, other.cfg.Name)["stirring"]["settings"].(map[string]any)["target_rpm"]; got != 650.0 {
			return fmt.Errorf("target_rpm %v", got)
		}
		return nil
	})
	if sub.saw(is(set, "700")) || sub.saw(is(stir+"target_rpm", "700")) {
		t.Fatal("the anonymous client's command was passed on")
	}

	// The leader dies: its unit goes lost, its job with it, and the
	// surviving worker's readings keep coming.
	l.stop()
	from := sub.mark()
	sub.await(t, 20*time.Second, l.cfg.Name+" lost", from, is("pioreactor/"+l.cfg.Name+"/$experiment/monitor/$state", "lost"))
	sub.await(t, 20*time.Second, l.cfg.Name+"'s od_reading lost", from, is("pioreactor/"+l.cfg.Name+"/mq/od_reading/$state", "lost"))
	from = sub.mark()
	sub.await(t, 20*time.Second, "an OD reading of "+other.cfg.Name+" after the leader died", from, odOf(other))
}

// With api.read_auth on, a client without the token cannot even connect.
func TestMQTTReadAuth(t *testing.T) {
	n := startNode(t, "solo", func(c *agent.Config) { c.ReadAuth = true })
	waitCluster(t, []*testNode{n}, 1, 1)
	o := paho.NewClientOptions().AddBroker("tcp://" + n.a.MQTTAddr()).SetClientID("nobody").SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("an anonymous client connected with read_auth on")
	}
	sub := subscribeAll(t, mqttClient(t, n, "reader", n.apiToken()))
	sub.await(t, 10*time.Second, "solo ready", 0, is("pioreactor/solo/$experiment/monitor/$state", "ready"))
}

// A taken MQTT port (a Pioreactor's own mosquitto, say) leaves MQTT off on
// that node, with an error in its log, and the node up and in its cluster.
func TestMQTTPortTakenKeepsTheNodeUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := startNode(t, "taken", func(c *agent.Config) { c.MQTTAddr = ln.Addr().String() })
	waitCluster(t, []*testNode{n}, 1, 1)
	if addr := n.a.MQTTAddr(); addr != "" {
		t.Fatalf("MQTT listens on %s although its port was taken", addr)
	}
	if !strings.Contains(n.logs.String(), "MQTT is off on this node: its port is taken") {
		t.Fatalf("no error about the taken port in the log:\n%s", n.logs.String())
	}
}
