package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/membership"
)

// Members is what the broker needs of membership: gossip's view of each
// node's health, and a notification when it changes.
type Members interface {
	States() map[string]membership.MemberState
	OnChange(fn func()) (stop func())
}

// Sources are the parts of the node the broker publishes from and acts through.
type Sources struct {
	// FSM is the cluster's replicated state: units, job reports, readings, logs.
	FSM *fsm.FSM
	// Members gives each node's health (monitor/$state, lost jobs).
	Members Members
	// API is the node's HTTP API; /set commands go through it.
	API http.Handler
	// Authorized says whether a client with this password (the API token)
	// may write or read, as the API decides for its own requests.
	Authorized func(token string, write bool) bool
	// Logger receives the broker's messages; nil means slog.Default().
	Logger *slog.Logger
}

// Broker is a node's MQTT broker. Start starts it; Close stops it and every
// goroutine it started.
type Broker struct {
	cfg Config
	src Sources
	log *slog.Logger
	srv *mochi.Server

	addr, wsAddr string

	changes  chan fsm.Change // from the FSM's apply goroutine, never blocking it
	resync   chan struct{}   // a full look at the state is due (capacity 1)
	commands chan command    // /set commands waiting for the API
	lost     atomic.Int64    // changes dropped when changes was full (a resync follows)
	passes   atomic.Int64    // full passes over the retained topics made (syncRetained)

	unsubFSM, unsubMembers func()
	ctx                    context.Context
	cancel                 context.CancelFunc
	wg                     sync.WaitGroup
	once                   sync.Once

	// What the broker has published, owned by the mirror goroutine.
	pub  map[string]string  // retained topic -> payload
	last map[string]string  // retained readings' topics -> payload, while their job runs
	ir   map[string]float64 // unit -> od_reading's ir_led_intensity
	// units is how many units the last full pass went over (passEvery).
	units int
}

// Start opens the listeners cfg asks for and starts publishing the state of
// src. It returns (nil, nil) when cfg enables no listener.
func Start(cfg Config, src Sources) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	if src.FSM == nil || src.Members == nil {
		return nil, ErrNoState
	}
	if src.Logger == nil {
		src.Logger = slog.Default()
	}
	if src.Authorized == nil {
		src.Authorized = func(string, bool) bool { return false }
	}
	log := src.Logger.With("component", "mqtt")
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClients = cfg.MaxClients
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.MaximumClientWritesPending = cfg.MaxPendingWrites
	caps.MaximumSessionExpiryInterval = cfg.MaxSessionExpiry
	caps.MaximumInflight = 1024
	caps.ReceiveMaximum = 64
	caps.TopicAliasMaximum = 64
	// No forced expiry in practice: the broker's own retained topics (a
	// unit's or a job's $state, its settings) are published once, when they
	// change, and must stay for a dashboard that connects hours later. With
	// an hour here, mochi deleted every retained message older than that on
	// its next second's sweep. (0 would also turn it off, but mochi gives
	// its QoS 2 acknowledgements this much time, and 0 would give them
	// none.) Clients cannot retain (hook.go); their sessions still expire.
	caps.MaximumMessageExpiryInterval = 100 * 365 * 24 * 3600
	srv := mochi.New(&mochi.Options{
		InlineClient: true, Capabilities: caps,
		// $SYS topics every 10 s, as mosquitto's default sys_interval: every
		// second (mochi's default) reads the runtime's memory statistics and
		// republishes twenty retained topics on an idle node.
		SysTopicResendInterval: 10,
		// The broker's own chatter (a client connected, say) only from warnings up.
		Logger: slog.New(minLevel{log.Handler(), slog.LevelWarn}),
	})
	b := &Broker{cfg: cfg, src: src, log: log, srv: srv,
		changes: make(chan fsm.Change, 1024), resync: make(chan struct{}, 1), commands: make(chan command, cfg.MaxCommands),
		pub: map[string]string{}, last: map[string]string{}, ir: map[string]float64{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := srv.AddHook(&hook{b: b, tokens: map[*mochi.Client]string{}}, nil); err != nil {
		return nil, err
	}
	var opened []net.Listener
	fail := func(err error) (*Broker, error) {
		for _, ln := range opened {
			ln.Close()
		}
		b.cancel()
		return nil, err
	}
	if cfg.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fail(fmt.Errorf("%w on --mqtt-addr %s: %v (is another MQTT broker, mosquitto say, using that port? set --mqtt-addr, or empty to disable)", ErrListen, cfg.Addr, err))
		}
		opened = append(opened, ln)
		b.addr = ln.Addr().String()
		if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
			return fail(err)
		}
	}
	if cfg.WSAddr != "" {
		ln, err := net.Listen("tcp", cfg.WSAddr)
		if err != nil {
			return fail(fmt.Errorf("%w on --mqtt-ws-addr %s: %v (set --mqtt-ws-addr, or empty to disable)", ErrListen, cfg.WSAddr, err))
		}
		opened = append(opened, ln)
		b.wsAddr = ln.Addr().String()
		if err := srv.AddListener(newWSListener("ws", ln, int64(cfg.MaxPacketSize))); err != nil {
			return fail(err)
		}
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fail(err)
	}
	// Notifications only queue work: the FSM's apply goroutine and the
	// membership manager's must never wait on the broker.
	b.unsubFSM = src.FSM.Subscribe(func(c fsm.Change) {
		select {
		case b.changes <- c:
		default:
			b.lost.Add(1)
			b.wantResync()
		}
	})
	b.unsubMembers = src.Members.OnChange(b.wantResync)
	b.wantResync()
	b.wg.Add(2)
	go b.mirror()
	go b.runCommands()
	log.Info("MQTT broker listening", "tcp", b.addr, "websocket", b.wsAddr)
	return b, nil
}

// Addr is the TCP listener's bound address ("" when disabled).
func (b *Broker) Addr() string { return b.addr }

// WSAddr is the WebSocket listener's bound address ("" when disabled).
func (b *Broker) WSAddr() string { return b.wsAddr }

// Close stops publishing, disconnects the clients, closes the listeners and
// waits for the broker's goroutines. It is idempotent.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() {
		b.unsubFSM()
		b.unsubMembers()
		b.cancel()
		b.wg.Wait()
		// The listeners are closed first, with a closer that reads the
		// clients once. mochi's own (closeListenerClients, v2.7.9) takes the
		// clients' read lock a second time while it holds it
		// (Clients.GetByListener calls Len): a client leaving at that moment
		// waits for the write lock between the two, and the second read
		// blocks behind it for good. make test hung there once. Each
		// listener runs its closer once, so srv.Close then skips mochi's.
		b.srv.Listeners.CloseAll(b.disconnectClients)
		err = b.srv.Close()
	})
	return err
}

// disconnectClients disconnects the clients of the listener id as the
// broker shuts down.
func (b *Broker) disconnectClients(id string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

func (b *Broker) wantResync() {
	select {
	case b.resync <- struct{}{}:
	default:
	}
}

// publish sends one message from the broker itself (no ACL applies).
func (b *Broker) publish(topic, payload string, retain bool) {
	if err := b.srv.Publish(topic, []byte(payload), retain, 0); err != nil && !errors.Is(err, mochi.ErrConnectionClosed) {
		b.log.Debug("MQTT publish failed", "topic", topic, "error", err)
	}
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{m.Handler.WithGroup(n), m.min} }
