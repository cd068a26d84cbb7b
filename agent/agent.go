package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pioreactor/pio/api"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/discovery"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/gpio"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/membership"
	"github.com/pioreactor/pio/mqtt"
	"github.com/pioreactor/pio/profilerun"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
	"github.com/pioreactor/pio/web"
	"github.com/pioreactor/pio/worker"
	"go.etcd.io/bbolt"
)

// Agent is one running node: the Raft peer, membership, the HTTP API and
// the worker side.
// Start starts it; Close stops everything it started. `pio serve` and the
// multi-node tests both run nodes through Start.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	nodeID   string
	httpAddr string   // advertised host:port of the HTTP API
	lock     *os.File // holds the data dir's lock while the node runs
	trust    *trust.Store
	port     *rpc.Transport // the cluster port: Raft and node-to-node calls
	rpc      *rpc.Server
	peers    *rpc.Client // this node's client of node-to-node calls
	node     *cluster.Node
	mem      *membership.Manager
	api      *api.Server
	hw       gpio.Backend
	worker   *worker.Worker // nil on a node that is not a worker
	srv      *http.Server
	mqtt     *mqtt.Broker // nil when both MQTT listeners are disabled
	// mdns announces this node on the LAN (nil when it does not); browser
	// browses the LAN for GET /api/workers/discover.
	mdns    *discovery.Advertiser
	browser *discovery.Browser
	// profiles runs the experiment profiles while this node leads.
	profiles *profilerun.Runner

	// stopCores ends followCores (a no-op without Config.FollowCores).
	stopCores func()

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start starts a node configured by cfg and returns once it serves HTTP.
func Start(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, err := cfg.advertiseHost()
	if err != nil {
		return nil, err
	}
	// The data dir and everything in it are private to this user (the umask
	// is set here too: tests and in-process reboots do not go through serve).
	if err := privateDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	// What a failed start has opened is closed again, last first.
	var undo []func()
	started := false
	defer func() {
		if !started {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { lock.Close() }) // every failed start releases the data dir
	// A data dir made by an older version may be readable by others.
	if err := tightenDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	nodeID, err := trust.LoadOrCreateNodeID(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%w; choose a directory this user may write with --data-dir (or PIO_DATA_DIR)", err)
	}
	log = log.With("node", cfg.Name)
	hw, err := gpio.Open(cfg.Hardware, worker.SeedOf(nodeID))
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { hw.Close() })
	logHardware(log, hw)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on --http-addr %s: %w (is another pio serve or program using that port?)", cfg.HTTPAddr, err)
	}
	undo = append(undo, func() { ln.Close() })
	httpAddr := net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))

	// Nodes sharing a machine on loopback send from their own address, as on a LAN.
	sourceIP := ""
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		sourceIP = host
	}
	store, err := trust.OpenStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	mode := rpc.ModeSecure // a node without secrets refuses everything until it makes or gets them
	if b := store.Current(); b != nil {
		mode = membership.ModeOf(b) // a node of a cluster being secured goes on where it was
	}
	port, err := rpc.Listen(rpc.Config{BindAddr: cfg.RaftAddr, AdvertiseHost: host, SourceIP: sourceIP, Trust: store,
		Mode: mode, HandshakeTimeout: rpc.DefaultConfig().HandshakeTimeout, Logger: log})
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { port.Close() })
	rc := rpc.NewClient(port)

	ccfg := cluster.DefaultConfig()
	ccfg.NodeID, ccfg.DataDir, ccfg.Streams = nodeID, cfg.DataDir, port
	ccfg.MaxVoters = cfg.MaxVoters
	ccfg.SnapshotThreshold, ccfg.SnapshotInterval, ccfg.TrailingLogs = cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs
	ccfg.HeartbeatTimeout, ccfg.ElectionTimeout = cfg.Heartbeat, cfg.Election
	ccfg.LeaderLeaseTimeout = min(ccfg.LeaderLeaseTimeout, cfg.Heartbeat)
	ccfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: raftLogLevel(cfg.LogLevel), Output: cfg.LogOut}).With("node", cfg.Name)
	f := fsm.New()
	// The readings store is a durable copy: it keeps its readings across
	// restarts, and Raft replays only what it had not committed.
	readingsPath := filepath.Join(cfg.DataDir, "readings.db")
	if err := f.OpenReadings(fsm.DefaultStoreConfig(readingsPath), log.With("store", "readings")); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (is another pio serve running with --data-dir %s?)", cluster.ErrDataDirInUse, cfg.DataDir, cfg.DataDir)
		}
		return nil, err
	}
	undo = append(undo, func() { f.CloseReadings() })
	node, err := cluster.Open(ccfg, f)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { node.Close() })
	if store.Current() == nil && (node.HadState() || cfg.Open) {
		// A cluster made before pio had secrets: it runs open until `pio security enable`.
		port.SetMode(rpc.ModeOpen)
		if node.HadState() {
			log.Warn("this node's cluster has no secrets (it was made by an older pio): anyone on the network can join it and write to it",
				"remediation", "run `pio security enable` on any member")
		}
	}
	// A node removed from the cluster keeps its certificate: Raft refuses it.
	port.SetRaftFilter(func(id string) bool { return !f.Removed(id) })
	var modelName, modelVersion string
	if cfg.Worker { // a node without a bioreactor has no model
		modelName, modelVersion = jobs.PioreactorModel(cfg.Model)
	}
	mcfg := membership.DefaultConfig(membership.Self{NodeID: nodeID, Name: cfg.Name, HTTPAddr: httpAddr, Worker: cfg.Worker,
		PreferLeader: cfg.PreferLeader, Version: cfg.Version, ModelName: modelName, ModelVersion: modelVersion})
	mcfg.Logger, mcfg.DataDir, mcfg.SourceIP = log, cfg.DataDir, sourceIP
	mcfg.Trust, mcfg.Transport, mcfg.RPC, mcfg.JoinToken, mcfg.Open = store, port, rc, cfg.JoinToken, cfg.Open
	mcfg.Gossip.BindAddr, mcfg.Gossip.AdvertiseHost = cfg.GossipAddr, host
	mcfg.Gossip.LastContact = port.LastContact
	if cfg.Stabilization > 0 {
		mcfg.Stabilization = cfg.Stabilization
	}
	mem, err := membership.New(mcfg, node)
	if err != nil {
		return nil, err
	}
	acfg := api.DefaultConfig()
	acfg.Name, acfg.NodeID, acfg.HTTPAddr, acfg.Version, acfg.HoldTimeout, acfg.Logger = cfg.Name, nodeID, httpAddr, cfg.Version, cfg.HoldTimeout, log
	acfg.Trust, acfg.RPC, acfg.Auth, acfg.ReadAuth = store, rc, cfg.APIAuth, cfg.ReadAuth
	acfg.Hardware, acfg.Reboot, acfg.Shutdown = hw, rebootFunc(cfg, hw), shutdownFunc(cfg, hw)
	acfg.Repair = func() error { return tightenDataDir(cfg.DataDir) }
	acfg.MaxEventStreams = cfg.MaxEventStreams
	acfg.ExportDir = filepath.Join(cfg.DataDir, "exports")
	acfg.DataDir = cfg.DataDir
	if cfg.UIDir != "" {
		if acfg.UI, err = web.Dir(cfg.UIDir); err != nil {
			return nil, fmt.Errorf("ui.dir (--ui-dir): %w", err)
		}
	}
	var wk *worker.Worker
	if cfg.Worker {
		limits, _ := jobs.LimitsFor(cfg.Model) // checked by Validate
		wk, err = worker.Start(worker.Config{Unit: cfg.Name, NodeID: nodeID, Logger: log, Limits: limits, PumpMLPerSecond: cfg.PumpMLPerSecond, OnLeaderChange: node.OnLeaderChange, Send: func(ctx context.Context, id string, b fsm.RecordReadings) (rpc.Ack, error) {
			_, addr := node.Leader()
			if addr == "" {
				return rpc.Ack{}, cluster.ErrNotLeader
			}
			return rc.StoreReadings(ctx, addr, id, b)
		}}, f, hw)
		if err != nil {
			return nil, err
		}
		undo = append(undo, wk.Close)
		acfg.Jobs = wk.Jobs
	}
	// LAN discovery: the API browses for nodes to add; this node announces itself below.
	dcfg := cfg.discoveryConfig()
	dcfg.Logger = log
	browser := discovery.NewBrowser(dcfg)
	undo = append(undo, browser.Close)
	acfg.Discover = browser.Browse
	srv := api.New(acfg, node, mem)
	profiles := profilerun.Start(profilerun.Config{Name: cfg.Name, Node: node, Caller: rc, Logger: log.With("component", "profiles"),
		Alive: func(id string) bool {
			h := mem.States()[id].Health
			return h != membership.HealthDead && h != membership.HealthLeft
		}})
	undo = append(undo, profiles.Close)
	rpcSrv := rpc.NewServer(rpc.ServerConfig{Transport: port, Client: rc, Raft: node, FSM: f, Members: mem, Public: srv.Handler(), Logger: log,
		GatherWindow: cfg.GatherWindow,
		Explain:      func(err error) rpc.Error { e := api.Explain(err); return rpc.Error(e) }})
	// Every node's MQTT broker publishes the cluster's state; commands go through the API.
	broker, err := mqtt.Start(cfg.mqttConfig(), mqtt.Sources{FSM: f, Members: mem, API: srv.Handler(), Authorized: srv.Authorized, Logger: log})
	switch {
	case errors.Is(err, mqtt.ErrListen):
		// MQTT is a window on the cluster, not the cluster: a taken port (a
		// Pioreactor's own mosquitto, say) must not keep the node down.
		log.Error("MQTT is off on this node: its port is taken", "error", err.Error(),
			"remediation", "stop what holds it (a Pioreactor's mosquitto: sudo systemctl disable --now mosquitto) or set mqtt.addr / mqtt.ws_addr, then restart pio")
		broker = nil
	case err != nil:
		return nil, err
	}
	if broker != nil {
		undo = append(undo, func() { broker.Close() })
	}
	adv := advertise(cfg, dcfg, log, httpAddr, node, mem)
	if adv != nil {
		undo = append(undo, func() { adv.Close() })
	}
	a := &Agent{cfg: cfg, log: log, nodeID: nodeID, lock: lock, httpAddr: httpAddr, trust: store, port: port, rpc: rpcSrv, peers: rc, node: node, mem: mem,
		api: srv, hw: hw, worker: wk, profiles: profiles, srv: cfg.HTTPLimits.server(srv.Handler()), mqtt: broker, mdns: adv, browser: browser}

	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.stopCores = func() {}
	if cfg.FollowCores {
		a.stopCores = followCores(node, log)
	}
	serve := func() {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "error", err)
			}
		}()
	}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		mem.Run(ctx)
	}()
	go func() {
		defer a.wg.Done()
		p := &pruner{node: node, fsm: f, retention: cfg.Retention, downsampled: cfg.DownsampledRetention, every: cfg.PruneEvery, log: log}
		if p.every <= 0 {
			p.every = defaultPruneEvery
		}
		p.Run(ctx)
	}()
	switch {
	case cfg.Join != "":
		serve()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			mem.JoinAtStart(ctx, cfg.Join, cfg.JoinToken)
		}()
	default:
		// A new cluster of one answers once it leads and is in its own
		// inventory (requests wait in the listen backlog until then).
		if err := mem.StartStandalone(); err != nil {
			undo = []func(){func() { ln.Close() }, func() { a.Close() }} // the agent closes what it holds
			return nil, err
		}
		serve()
	}
	started = true
	log.Info("pio node started", "node_id", nodeID, "http", httpAddr, "raft", node.Addr(), "gossip", mem.GossipAddr(),
		"mqtt", a.MQTTAddr(), "mqtt_ws", a.MQTTWSAddr(), "data_dir", cfg.DataDir, "worker", cfg.Worker, "prefer_leader", cfg.PreferLeader, "version", cfg.Version)
	if store.Current() != nil && cfg.APIAuth != "off" {
		log.Info("writes to the API need the API token: print it with `pio token --api --data-dir "+cfg.DataDir+"` "+
			"and sign in to the UI with it (the CLI finds it in the data dir, or in PIO_API_TOKEN)", "ui", "http://"+httpAddr)
	}
	return a, nil
}

// Close stops the node: MQTT and HTTP first, then the background work, then Raft.
func (a *Agent) Close() error {
	var err error
	a.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if a.mdns != nil {
			_ = a.mdns.Close() // it reads the node's status
		}
		if a.mqtt != nil {
			_ = a.mqtt.Close() // its clients' commands go through the API: it stops first
		}
		_ = a.srv.Shutdown(ctx)
		a.browser.Close()  // after the handlers that may wait on it
		a.profiles.Close() // before the worker and Raft it acts through
		if a.worker != nil {
			a.worker.Close() // pumps first, then heater, then the rest
		}
		a.api.Close()
		a.stopCores()
		a.cancel()
		a.wg.Wait()
		_ = a.rpc.Close()
		_ = a.mem.Close()
		err = a.node.Close()
		_ = a.port.Close()
		_ = a.node.FSM().CloseReadings()
		_ = a.hw.Close()
		_ = a.lock.Close()
	})
	return err
}

// advertise announces this node on the LAN (mDNS, _pio-worker._tcp) when
// configured to, and returns nil when it does not: mDNS is a convenience, so
// a port it cannot share or an address it cannot announce is logged and the
// node runs on without it (as MQTT does).
func advertise(cfg Config, dcfg discovery.Config, log *slog.Logger, httpAddr string, node *cluster.Node, mem *membership.Manager) *discovery.Advertiser {
	if !dcfg.Advertise {
		return nil
	}
	host, portS, _ := net.SplitHostPort(httpAddr)
	ip := net.ParseIP(host).To4()
	port, _ := strconv.Atoi(portS)
	if ip == nil || ip.IsLoopback() {
		log.Info("not advertised on the LAN (mDNS): its address is not a LAN IPv4 address; add it by name or address", "address", httpAddr)
		return nil
	}
	adv, err := discovery.Advertise(dcfg, discovery.Self{Unit: cfg.Name, IP: ip, Port: port, Status: func() discovery.Status {
		servers, _ := node.Servers()
		return discovery.Status{Version: cfg.Version, Model: cfg.Model, Worker: cfg.Worker, Standalone: len(servers) == 1, Fresh: mem.Fresh()}
	}})
	if err != nil {
		log.Error("mDNS is off on this node: the Add dialogs of other nodes will not offer it", "error", err.Error(),
			"remediation", "let it share UDP 5353 (avahi-daemon does), or turn advertising off with mdns.advertise: false (--mdns-advertise=false); add it by name or address meanwhile")
		return nil
	}
	return adv
}

// logHardware says at start what the backend found: on a Pi, the HAT and
// each sensor it cannot read (a warning, with the reason).
func logHardware(log *slog.Logger, hw gpio.Backend) {
	st := hw.State()
	args := []any{"backend", st.Backend, "model", st.Model}
	if st.HAT != nil {
		args = append(args, "hat_version", st.HAT.Version, "hat_serial", st.HAT.Serial, "firmware", st.HAT.Firmware, "devices", st.HAT.Devices)
	}
	log.Info("hardware", args...)
	for _, name := range gpio.SensorNames {
		if err := hw.Sensor(name); err != nil && st.Backend == "rpi" {
			log.Warn("a sensor of this unit cannot be read; the jobs that need it will refuse to start", "sensor", name, "cause", err.Error(),
				"remediation", "run `pio hardware check`; check that the HAT is seated and I²C is enabled")
		}
	}
}

// lockDataDir takes an exclusive lock on the data dir, so that two pio serve
// never share one (the second would corrupt what the first writes).
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s (is another pio serve running with --data-dir %s?)", cluster.ErrDataDirInUse, dir, dir)
	}
	return f, nil
}

// rebootFunc is how this node reboots: the configured command on a Raspberry
// Pi; with simulated hardware, an in-process restart of the whole runtime.
func rebootFunc(cfg Config, hw gpio.Backend) func() error {
	if hw.Name() == "rpi" {
		return commandFunc("reboot_command", cfg.RebootCommand)
	}
	if cfg.onReboot == nil {
		return nil
	}
	return func() error { cfg.onReboot(); return nil }
}

// shutdownFunc is how this node powers off: the configured command on a
// Raspberry Pi; with simulated hardware, the runtime stops its agent for good.
func shutdownFunc(cfg Config, hw gpio.Backend) func() error {
	if hw.Name() == "rpi" {
		return commandFunc("shutdown_command", cfg.ShutdownCommand)
	}
	if cfg.onShutdown == nil {
		return nil
	}
	return func() error { cfg.onShutdown(); return nil }
}

// commandFunc runs command (the config key's value) half a second after it
// is called, so that the API's answer goes out first.
func commandFunc(key, command string) func() error {
	return func() error {
		f := strings.Fields(command)
		if len(f) == 0 {
			return fmt.Errorf("%s is empty", key)
		}
		go func() {
			time.Sleep(500 * time.Millisecond) // let the answer go out
			_ = exec.Command(f[0], f[1:]...).Run()
		}()
		return nil
	}
}

func raftLogLevel(level string) hclog.Level {
	if level == "debug" {
		return hclog.Debug
	}
	if level == "error" {
		return hclog.Error
	}
	return hclog.Warn
}

// SlogLevel maps a --log-level to slog's level (info when unknown).
func SlogLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NodeID is this node's ID (kept in its data dir).
func (a *Agent) NodeID() string { return a.nodeID }

// HTTPAddr is the host:port other nodes and browsers reach this node's API at.
func (a *Agent) HTTPAddr() string { return a.httpAddr }

// Config is the configuration this node was started with.
func (a *Agent) Config() Config { return a.cfg }

// Node is this node's Raft peer.
func (a *Agent) Node() *cluster.Node { return a.node }

// Membership is this node's membership manager (gossip, joins, reconciler).
func (a *Agent) Membership() *membership.Manager { return a.mem }

// API is this node's HTTP API.
func (a *Agent) API() *api.Server { return a.api }

// Peers is this node's client of node-to-node calls.
func (a *Agent) Peers() *rpc.Client { return a.peers }

// Port is this node's cluster port (Raft and node-to-node calls).
func (a *Agent) Port() *rpc.Transport { return a.port }

// Trust is this node's share of the cluster's secrets.
func (a *Agent) Trust() *trust.Store { return a.trust }

// Worker is this node's worker side, nil on a node that is not a worker.
func (a *Agent) Worker() *worker.Worker { return a.worker }

// Hardware is this node's HAT backend (simulated or a Raspberry Pi's).
func (a *Agent) Hardware() gpio.Backend { return a.hw }

// MQTTAddr is the bound address of the MQTT broker's TCP listener ("" when disabled).
func (a *Agent) MQTTAddr() string {
	if a.mqtt == nil {
		return ""
	}
	return a.mqtt.Addr()
}

// MQTTWSAddr is the bound address of the MQTT broker's WebSocket listener ("" when disabled).
func (a *Agent) MQTTWSAddr() string {
	if a.mqtt == nil {
		return ""
	}
	return a.mqtt.WSAddr()
}
