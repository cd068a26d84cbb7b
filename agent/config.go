package agent

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pioreactor/pio/api"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/discovery"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/membership"
	"github.com/pioreactor/pio/mqtt"
	"github.com/pioreactor/pio/trust"
)

// Config is everything a node is configured with; `pio serve` fills it from
// flags, PIO_* environment variables and the config file, in that order of
// precedence (cmd/pio), from DefaultConfig.
type Config struct {
	Name       string
	DataDir    string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	// MQTTAddr and MQTTWSAddr are the MQTT broker's TCP and WebSocket
	// listeners (Pioreactor's 1883 and 9001); empty disables each.
	MQTTAddr   string
	MQTTWSAddr string
	// UIDir is a folder holding another browser UI's build (Pioreactor's own)
	// to serve at / instead of pio's, which moves to /pio/; "" serves pio's.
	UIDir         string
	AdvertiseAddr string
	// MDNSAdvertise makes the node announce itself on the LAN (mDNS,
	// _pio-worker._tcp) for "Add new Pioreactor" (see discovery).
	MDNSAdvertise bool
	Join          string
	Worker        bool
	PreferLeader  bool
	// FollowCores gives Go's scheduler every core while this node leads and
	// one while it follows (see followCores); pio serve sets it. It is
	// process-wide: leave it off when several nodes share a process.
	FollowCores bool
	// TimerSlack is how late the kernel may fire this process's timers to
	// merge their wake-ups (Linux's timer slack; 0 keeps the system's 50 µs).
	// It is process-wide: pio serve applies it with SetTimerSlack.
	TimerSlack time.Duration
	Hardware   string
	// Model is the Pioreactor model (its vial and heater limits): see jobs.LimitsFor.
	Model string
	// PumpMLPerSecond is the pumps' calibration, ml a second at 100 %.
	PumpMLPerSecond float64
	MaxVoters       int
	Stabilization   time.Duration
	Heartbeat       time.Duration
	Election        time.Duration
	HoldTimeout     time.Duration
	// JoinToken is the cluster's join token (config join_token, env PIO_TOKEN, flag --token):
	// it lets --join in, and pins which cluster may invite this node.
	JoinToken string
	// APIAuth is "on" (writes need the API token) or "off" (an open API).
	APIAuth string
	// ReadAuth makes reads of the API need the API token too.
	ReadAuth bool
	// MaxEventStreams is how many GET /api/events streams this node serves at once.
	MaxEventStreams int
	LogLevel        string
	// SnapshotThreshold, SnapshotInterval and TrailingLogs tune Raft snapshots (config file or env only).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// Retention is how long raw readings and log lines are kept; then the
	// readings are averaged to one a minute, kept DownsampledRetention.
	Retention            time.Duration
	DownsampledRetention time.Duration
	// RebootCommand is what a reboot runs on a Raspberry Pi (config file or env only).
	RebootCommand string
	// ShutdownCommand is what a shutdown runs on a Raspberry Pi (config file or env only).
	ShutdownCommand string
	// HTTPLimits are the HTTP server's timeouts and header limit (not a setting; tests shorten them).
	HTTPLimits HTTPLimits
	// LogOut receives the Raft log; nil means stderr. Tests set it.
	LogOut io.Writer
	// onReboot, set by the runtime, restarts this node in-process (simulated hardware).
	onReboot func()
	// onShutdown, set by the runtime, stops this node in-process (simulated hardware).
	onShutdown func()
	// PruneEvery is how often the leader applies the retention, and
	// GatherWindow how often it stores the workers' batches (not settings;
	// tests shorten them).
	PruneEvery   time.Duration
	GatherWindow time.Duration
	// Open makes a new cluster without secrets, as pio did before it had
	// them; only tests set it, to make an open cluster to secure.
	Open bool
	// Version is the software version this node reports (set by the binary).
	Version string
}

// DefaultConfig is what `pio serve` runs with when nothing is set.
func DefaultConfig() Config {
	// The packages' own defaults, declared once in each package's DefaultConfig.
	cd, md, ad, jd, qd := cluster.DefaultConfig(), membership.DefaultConfig(membership.Self{}), api.DefaultConfig(), jobs.DefaultConfig(), mqtt.DefaultConfig()
	dd := discovery.DefaultConfig()
	return Config{
		DataDir: "/var/lib/pio", HTTPAddr: ":8080", RaftAddr: ":8300", GossipAddr: ":8301", MQTTAddr: qd.Addr, MQTTWSAddr: qd.WSAddr,
		Worker: true, Hardware: "auto", Model: jd.Limits.Model, PumpMLPerSecond: jd.PumpMLPerSecond, MaxVoters: cd.MaxVoters, Stabilization: md.Stabilization,
		Heartbeat: cd.HeartbeatTimeout, Election: cd.ElectionTimeout, HoldTimeout: ad.HoldTimeout, MaxEventStreams: ad.MaxEventStreams, LogLevel: "info", APIAuth: ad.Auth,
		SnapshotThreshold: cd.SnapshotThreshold, SnapshotInterval: cd.SnapshotInterval, TrailingLogs: cd.TrailingLogs,
		Retention: 30 * 24 * time.Hour, DownsampledRetention: 365 * 24 * time.Hour,
		RebootCommand: "systemctl reboot", ShutdownCommand: "systemctl poweroff", HTTPLimits: DefaultHTTPLimits(), MDNSAdvertise: dd.Advertise,
		TimerSlack: defaultTimerSlack,
	}
}

// Validate checks the configuration and fills in the name (the hostname).
func (c *Config) Validate() error {
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --name given and the hostname is unknown: %w", err)
		}
		c.Name, _, _ = strings.Cut(h, ".")
	}
	if why := fsm.ValidUnitName(c.Name); why != "" {
		return fmt.Errorf("%s; set a valid name with --name, PIO_NAME or name in the config file", why)
	}
	if why := fsm.ReservedUnitName(c.Name); why != "" {
		return fmt.Errorf("%s; choose another name with --name, PIO_NAME or name in the config file", why)
	}
	if c.TimerSlack < 0 || c.TimerSlack > maxTimerSlack {
		return fmt.Errorf("timer_slack is %s; it must be between 0 (the system's) and %s", c.TimerSlack, maxTimerSlack)
	}
	switch c.Hardware {
	case "auto", "sim", "rpi":
	default:
		return fmt.Errorf("--hardware is %q; it must be auto, sim or rpi", c.Hardware)
	}
	if _, err := jobs.LimitsFor(c.Model); err != nil {
		return fmt.Errorf("%v; set it with --model, PIO_MODEL or model in the config file", err)
	}
	if !(c.PumpMLPerSecond > 0) || c.PumpMLPerSecond > 100 {
		return fmt.Errorf("pump.ml_per_second is %g; it must be over 0 and at most 100 (ml/s at 100 %% duty: calibrate the pumps)", c.PumpMLPerSecond)
	}
	switch c.APIAuth {
	case "on", "off":
	default:
		return fmt.Errorf("api.auth is %q; it must be on or off", c.APIAuth)
	}
	if c.JoinToken != "" {
		if _, err := trust.ParseToken(c.JoinToken); err != nil {
			return fmt.Errorf("join_token (--token, PIO_TOKEN): %w", err)
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir is empty; give a directory this node may write to")
	}
	for _, a := range []struct{ name, v string }{{"--http-addr", c.HTTPAddr}, {"--raft-addr", c.RaftAddr}, {"--gossip-addr", c.GossipAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("%s %q is not HOST:PORT (e.g. :8080 or 10.0.0.5:8080): %v", a.name, a.v, err)
		}
	}
	if err := c.mqttConfig().Validate(); err != nil {
		return err
	}
	if c.MaxEventStreams < 1 {
		return fmt.Errorf("--max-event-streams is %d; it must be at least 1 (each open page of the UI holds one stream)", c.MaxEventStreams)
	}
	if c.Retention < time.Hour {
		return fmt.Errorf("readings.retention (--readings-retention) is %v; keep raw readings at least 1h (e.g. 720h for 30 days)", c.Retention)
	}
	if c.DownsampledRetention < c.Retention {
		return fmt.Errorf("readings.downsampled_retention (--readings-downsampled-retention) is %v, shorter than readings.retention %v; it must be at least as long", c.DownsampledRetention, c.Retention)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("--advertise-addr %q is not an IP address", c.AdvertiseAddr)
	}
	return nil
}

// advertiseHost chooses the IP other nodes reach this node at: --advertise-addr,
// else the bind host of --http-addr, else the one non-loopback IPv4 address of
// this host. Several candidates are an error that names them.
func (c *Config) advertiseHost() (string, error) {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr, nil
	}
	host, _, _ := net.SplitHostPort(c.HTTPAddr)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return host, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list network interfaces: %w", err)
	}
	return c.chooseAdvertise(addrs)
}

// chooseAdvertise picks the one non-loopback IPv4 address among addrs, or
// explains why it cannot.
func (c *Config) chooseAdvertise(addrs []net.Addr) (string, error) {
	var found []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			found = append(found, ipn.IP.String())
		}
	}
	switch len(found) {
	case 0:
		return "127.0.0.1", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("this host has several addresses (%s) and --http-addr %s does not say which one other nodes should use; set --advertise-addr (or PIO_ADVERTISE_ADDR) to one of them",
		strings.Join(found, ", "), c.HTTPAddr)
}

// mqttConfig is the broker's configuration: its addresses from this one,
// its limits the package's defaults.
func (c *Config) mqttConfig() mqtt.Config {
	q := mqtt.DefaultConfig()
	q.Addr, q.WSAddr = c.MQTTAddr, c.MQTTWSAddr
	return q
}

// discoveryConfig is LAN discovery's configuration: advertising from this
// one, the rest the package's defaults.
func (c *Config) discoveryConfig() discovery.Config {
	d := discovery.DefaultConfig()
	d.Advertise = c.MDNSAdvertise
	return d
}
