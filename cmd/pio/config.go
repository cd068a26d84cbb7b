package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pioreactor/pio/api"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/membership"
	"github.com/pioreactor/pio/trust"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// serveConfig is everything `pio serve` is configured with, from flags, PIO_*
// environment variables and the config file, in that order of precedence.
type serveConfig struct {
	Name          string
	DataDir       string
	HTTPAddr      string
	RaftAddr      string
	GossipAddr    string
	AdvertiseAddr string
	Join          string
	Worker        bool
	PreferLeader  bool
	Hardware      string
	MaxVoters     int
	Stabilization time.Duration
	Heartbeat     time.Duration
	Election      time.Duration
	HoldTimeout   time.Duration
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
	// HTTPLimits are the HTTP server's timeouts and header limit (not a setting; tests shorten them).
	HTTPLimits httpLimits
	// logOut receives the Raft log; nil means stderr. Tests set it.
	logOut io.Writer
	// onReboot, set by the runtime, restarts this node in-process (simulated hardware).
	onReboot func()
	// pruneEvery is how often the leader applies the retention, and
	// gatherWindow how often it stores the workers' batches (not settings;
	// tests shorten them).
	pruneEvery   time.Duration
	gatherWindow time.Duration
	// open makes a new cluster without secrets, as pio did before it had
	// them; only tests set it, to make an open cluster to secure.
	open bool
}

// defaultServeConfig is what `pio serve` runs with when nothing is set.
func defaultServeConfig() serveConfig {
	// The packages' own defaults, declared once in each package's DefaultConfig.
	cd, md, ad := cluster.DefaultConfig(), membership.DefaultConfig(membership.Self{}), api.DefaultConfig()
	return serveConfig{
		DataDir: "/var/lib/pio", HTTPAddr: ":8080", RaftAddr: ":8300", GossipAddr: ":8301",
		Worker: true, Hardware: "auto", MaxVoters: cd.MaxVoters, Stabilization: md.Stabilization,
		Heartbeat: cd.HeartbeatTimeout, Election: cd.ElectionTimeout, HoldTimeout: ad.HoldTimeout, MaxEventStreams: ad.MaxEventStreams, LogLevel: "info", APIAuth: ad.Auth,
		SnapshotThreshold: cd.SnapshotThreshold, SnapshotInterval: cd.SnapshotInterval, TrailingLogs: cd.TrailingLogs,
		Retention: 30 * 24 * time.Hour, DownsampledRetention: 365 * 24 * time.Hour,
		RebootCommand: "systemctl reboot", HTTPLimits: defaultHTTPLimits(),
	}
}

// serveKeys maps config keys (file keys; env PIO_ + upper case with . and - as _) to flags.
var serveKeys = []struct{ key, flag, usage string }{
	{"name", "name", "this node's name (default: the hostname)"},
	{"data_dir", "data-dir", "where this node keeps its Raft log, snapshots and node ID"},
	{"http_addr", "http-addr", "address of the HTTP API and UI"},
	{"raft_addr", "raft-addr", "address of the cluster port (TCP): Raft and node-to-node calls, under mutual TLS"},
	{"gossip_addr", "gossip-addr", "address of gossip (UDP and TCP)"},
	{"advertise_addr", "advertise-addr", "the IP other nodes reach this one at (required when a bind address is unspecified and this host has several)"},
	{"join", "join", "HOST[:PORT] of any node of a cluster to join at start"},
	{"join_token", "token", "the cluster's join token (print it with: sudo pio token, on a member; env PIO_TOKEN): needed to join, and it pins which cluster may invite this node"},
	{"worker", "worker", "this node has a bioreactor and runs activities"},
	{"prefer_leader", "prefer-leader", "this node should lead when healthy (default: true when --worker=false)"},
	{"hardware", "hardware", "auto, sim or rpi (auto: rpi only on a confirmed Raspberry Pi)"},
	{"cluster.max_voters", "max-voters", "how many nodes vote in Raft (odd); the others are non-voters"},
	{"cluster.stabilization_time", "stabilization-time", "how long a non-voter must be healthy before promotion, and a voter dead before it is replaced"},
	{"raft.heartbeat_timeout", "raft-heartbeat-timeout", "time without a leader's heartbeat before a follower starts an election"},
	{"raft.election_timeout", "raft-election-timeout", "time a candidate waits for votes"},
	{"api.hold_timeout", "hold-timeout", "how long a request waits for a leader before 503"},
	{"api.auth", "api-auth", "on: writes to the API need the API token; off: anyone on the network may write (not recommended)"},
	{"api.read_auth", "api-read-auth", "reads of the API need the API token too"},
	{"api.max_event_streams", "max-event-streams", "how many GET /api/events streams (open UI pages) this node serves at once; past it, 503"},
	{"readings.retention", "readings-retention", "how long raw readings and job logs are kept (then readings are averaged to one a minute)"},
	{"readings.downsampled_retention", "readings-downsampled-retention", "how long the minute averages of readings are kept"},
	{"log_level", "log-level", "debug, info, warn or error"},
}

// addServeFlags declares the flags of `pio serve` with their defaults.
func addServeFlags(cmd *cobra.Command) {
	d := defaultServeConfig()
	f := cmd.Flags()
	f.String("config", "", "config file (TOML, YAML or JSON); env PIO_CONFIG")
	for _, k := range serveKeys {
		switch k.key {
		case "worker":
			f.Bool(k.flag, d.Worker, k.usage)
		case "api.read_auth":
			f.Bool(k.flag, d.ReadAuth, k.usage)
		case "prefer_leader":
			f.Bool(k.flag, false, k.usage)
		case "cluster.max_voters":
			f.Int(k.flag, d.MaxVoters, k.usage)
		case "cluster.stabilization_time":
			f.Duration(k.flag, d.Stabilization, k.usage)
		case "raft.heartbeat_timeout":
			f.Duration(k.flag, d.Heartbeat, k.usage)
		case "raft.election_timeout":
			f.Duration(k.flag, d.Election, k.usage)
		case "api.hold_timeout":
			f.Duration(k.flag, d.HoldTimeout, k.usage)
		case "api.max_event_streams":
			f.Int(k.flag, d.MaxEventStreams, k.usage)
		case "readings.retention":
			f.Duration(k.flag, d.Retention, k.usage)
		case "readings.downsampled_retention":
			f.Duration(k.flag, d.DownsampledRetention, k.usage)
		default:
			def := map[string]string{"data_dir": d.DataDir, "http_addr": d.HTTPAddr, "raft_addr": d.RaftAddr,
				"gossip_addr": d.GossipAddr, "hardware": d.Hardware, "log_level": d.LogLevel, "api.auth": d.APIAuth}[k.key]
			f.String(k.flag, def, k.usage)
		}
	}
}

// loadServeConfig reads flags, environment and config file into a serveConfig.
func loadServeConfig(cmd *cobra.Command) (serveConfig, error) {
	v := viper.New()
	v.SetEnvPrefix("PIO")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	d := defaultServeConfig()
	v.SetDefault("raft.snapshot_threshold", d.SnapshotThreshold)
	v.SetDefault("raft.snapshot_interval", d.SnapshotInterval)
	v.SetDefault("raft.trailing_logs", d.TrailingLogs)
	v.SetDefault("reboot_command", d.RebootCommand)
	for _, k := range serveKeys {
		if err := v.BindPFlag(k.key, cmd.Flags().Lookup(k.flag)); err != nil {
			return serveConfig{}, err
		}
	}
	_ = v.BindPFlag("config", cmd.Flags().Lookup("config"))
	// The join token's variable is PIO_TOKEN, as `pio join` takes it.
	_ = v.BindEnv("join_token", "PIO_TOKEN", "PIO_JOIN_TOKEN")
	if file := v.GetString("config"); file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return serveConfig{}, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	c := serveConfig{
		Name: v.GetString("name"), DataDir: v.GetString("data_dir"), HTTPAddr: v.GetString("http_addr"),
		RaftAddr: v.GetString("raft_addr"), GossipAddr: v.GetString("gossip_addr"), AdvertiseAddr: v.GetString("advertise_addr"),
		Join: v.GetString("join"), Worker: v.GetBool("worker"), Hardware: v.GetString("hardware"),
		MaxVoters: v.GetInt("cluster.max_voters"), Stabilization: v.GetDuration("cluster.stabilization_time"), Heartbeat: v.GetDuration("raft.heartbeat_timeout"),
		Election: v.GetDuration("raft.election_timeout"), HoldTimeout: v.GetDuration("api.hold_timeout"), LogLevel: v.GetString("log_level"),
		MaxEventStreams: v.GetInt("api.max_event_streams"), HTTPLimits: d.HTTPLimits,
		SnapshotThreshold: v.GetUint64("raft.snapshot_threshold"), SnapshotInterval: v.GetDuration("raft.snapshot_interval"),
		TrailingLogs: v.GetUint64("raft.trailing_logs"), RebootCommand: v.GetString("reboot_command"),
		JoinToken: v.GetString("join_token"), APIAuth: v.GetString("api.auth"), ReadAuth: v.GetBool("api.read_auth"),
		Retention: v.GetDuration("readings.retention"), DownsampledRetention: v.GetDuration("readings.downsampled_retention"),
	}
	// prefer_leader defaults to true for a node that is not a worker.
	if v.IsSet("prefer_leader") && (cmd.Flags().Changed("prefer-leader") || os.Getenv("PIO_PREFER_LEADER") != "" || v.InConfig("prefer_leader")) {
		c.PreferLeader = v.GetBool("prefer_leader")
	} else {
		c.PreferLeader = !c.Worker
	}
	return c, nil
}

// validate checks the configuration and fills in the name.
func (c *serveConfig) validate() error {
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
	switch c.Hardware {
	case "auto", "sim", "rpi":
	default:
		return fmt.Errorf("--hardware is %q; it must be auto, sim or rpi", c.Hardware)
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
func (c *serveConfig) advertiseHost() (string, error) {
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
func (c *serveConfig) chooseAdvertise(addrs []net.Addr) (string, error) {
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
