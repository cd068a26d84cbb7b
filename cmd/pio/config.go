package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pioreactor/pio/agent"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// serveKeys maps config keys (file keys; env PIO_ + upper case with . and - as _) to flags.
var serveKeys = []struct{ key, flag, usage string }{
	{"name", "name", "this node's name (default: the hostname)"},
	{"data_dir", "data-dir", "where this node keeps its Raft log, snapshots and node ID"},
	{"http_addr", "http-addr", "address of the HTTP API and UI"},
	{"raft_addr", "raft-addr", "address of the cluster port (TCP): Raft and node-to-node calls, under mutual TLS"},
	{"gossip_addr", "gossip-addr", "address of gossip (UDP and TCP)"},
	{"mqtt.addr", "mqtt-addr", "address of the MQTT broker (TCP; Pioreactor's topics, from the cluster's state); empty disables it"},
	{"mqtt.ws_addr", "mqtt-ws-addr", "address of the MQTT broker over WebSocket; empty disables it"},
	{"ui.dir", "ui-dir", "a folder with another web UI's build (Pioreactor's own: its frontend/build) to serve at / instead of pio's, which moves to /pio/"},
	{"mdns.advertise", "mdns-advertise", "announce this node on the LAN (mDNS, _pio-worker._tcp, as Pioreactor's workers do) so that a cluster's \"Add new Pioreactor\" offers it; says its name, address, version, model and whether it is standalone, nothing secret"},
	{"advertise_addr", "advertise-addr", "the IP other nodes reach this one at (required when a bind address is unspecified and this host has several)"},
	{"join", "join", "HOST[:PORT] of any node of a cluster to join at start"},
	{"join_token", "token", "the cluster's join token (print it with: sudo pio token, on a member; env PIO_TOKEN): needed to join, and it pins which cluster may invite this node"},
	{"worker", "worker", "this node has a bioreactor and runs activities"},
	{"prefer_leader", "prefer-leader", "this node should lead when healthy (default: true when --worker=false)"},
	{"hardware", "hardware", "auto, sim or rpi (auto: rpi only on a confirmed Raspberry Pi)"},
	{"model", "model", "the Pioreactor model, for its vial's and heater's limits: pioreactor_40ml, pioreactor_20ml, pioreactor_40ml_XR, pioreactor_20ml_XR or pioreactor_20ml_v1.0"},
	{"pump.ml_per_second", "pump-ml-per-second", "the pumps' calibration: ml a second at full duty (Pioreactor's default until you calibrate)"},
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
	{"timer_slack", "timer-slack", "how late Linux may fire this node's timers to merge wake-ups (an idle node spends less CPU); 0 keeps the system's 50µs"},
}

// addServeFlags declares the flags of `pio serve` with their defaults.
func addServeFlags(cmd *cobra.Command) {
	d := agent.DefaultConfig()
	f := cmd.Flags()
	f.String("config", "", "config file (TOML, YAML or JSON); env PIO_CONFIG")
	for _, k := range serveKeys {
		switch k.key {
		case "worker":
			f.Bool(k.flag, d.Worker, k.usage)
		case "api.read_auth":
			f.Bool(k.flag, d.ReadAuth, k.usage)
		case "mdns.advertise":
			f.Bool(k.flag, d.MDNSAdvertise, k.usage)
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
		case "timer_slack":
			f.Duration(k.flag, d.TimerSlack, k.usage)
		case "api.hold_timeout":
			f.Duration(k.flag, d.HoldTimeout, k.usage)
		case "api.max_event_streams":
			f.Int(k.flag, d.MaxEventStreams, k.usage)
		case "readings.retention":
			f.Duration(k.flag, d.Retention, k.usage)
		case "readings.downsampled_retention":
			f.Duration(k.flag, d.DownsampledRetention, k.usage)
		case "pump.ml_per_second":
			f.Float64(k.flag, d.PumpMLPerSecond, k.usage)
		default:
			def := map[string]string{"data_dir": d.DataDir, "http_addr": d.HTTPAddr, "raft_addr": d.RaftAddr,
				"gossip_addr": d.GossipAddr, "mqtt.addr": d.MQTTAddr, "mqtt.ws_addr": d.MQTTWSAddr, "hardware": d.Hardware, "model": d.Model, "log_level": d.LogLevel, "api.auth": d.APIAuth}[k.key]
			f.String(k.flag, def, k.usage)
		}
	}
}

// loadServeConfig reads flags, environment and config file into a agent.Config.
func loadServeConfig(cmd *cobra.Command) (agent.Config, error) {
	v := viper.New()
	v.SetEnvPrefix("PIO")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	d := agent.DefaultConfig()
	v.SetDefault("raft.snapshot_threshold", d.SnapshotThreshold)
	v.SetDefault("raft.snapshot_interval", d.SnapshotInterval)
	v.SetDefault("raft.trailing_logs", d.TrailingLogs)
	v.SetDefault("reboot_command", d.RebootCommand)
	v.SetDefault("shutdown_command", d.ShutdownCommand)
	for _, k := range serveKeys {
		if err := v.BindPFlag(k.key, cmd.Flags().Lookup(k.flag)); err != nil {
			return agent.Config{}, err
		}
	}
	_ = v.BindPFlag("config", cmd.Flags().Lookup("config"))
	// The join token's variable is PIO_TOKEN, as `pio join` takes it.
	_ = v.BindEnv("join_token", "PIO_TOKEN", "PIO_JOIN_TOKEN")
	if file := v.GetString("config"); file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return agent.Config{}, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	c := agent.Config{
		Name: v.GetString("name"), DataDir: v.GetString("data_dir"), HTTPAddr: v.GetString("http_addr"),
		RaftAddr: v.GetString("raft_addr"), GossipAddr: v.GetString("gossip_addr"),
		MQTTAddr: v.GetString("mqtt.addr"), MQTTWSAddr: v.GetString("mqtt.ws_addr"), UIDir: v.GetString("ui.dir"), AdvertiseAddr: v.GetString("advertise_addr"),
		Join: v.GetString("join"), Worker: v.GetBool("worker"), Hardware: v.GetString("hardware"),
		Model: v.GetString("model"), PumpMLPerSecond: v.GetFloat64("pump.ml_per_second"),
		MaxVoters: v.GetInt("cluster.max_voters"), Stabilization: v.GetDuration("cluster.stabilization_time"), Heartbeat: v.GetDuration("raft.heartbeat_timeout"),
		Election: v.GetDuration("raft.election_timeout"), HoldTimeout: v.GetDuration("api.hold_timeout"), LogLevel: v.GetString("log_level"),
		MaxEventStreams: v.GetInt("api.max_event_streams"), HTTPLimits: d.HTTPLimits,
		SnapshotThreshold: v.GetUint64("raft.snapshot_threshold"), SnapshotInterval: v.GetDuration("raft.snapshot_interval"),
		TrailingLogs: v.GetUint64("raft.trailing_logs"), RebootCommand: v.GetString("reboot_command"), ShutdownCommand: v.GetString("shutdown_command"),
		JoinToken: v.GetString("join_token"), APIAuth: v.GetString("api.auth"), ReadAuth: v.GetBool("api.read_auth"),
		Retention: v.GetDuration("readings.retention"), DownsampledRetention: v.GetDuration("readings.downsampled_retention"),
		MDNSAdvertise: v.GetBool("mdns.advertise"), TimerSlack: v.GetDuration("timer_slack"),
	}
	// prefer_leader defaults to true for a node that is not a worker.
	if v.IsSet("prefer_leader") && (cmd.Flags().Changed("prefer-leader") || os.Getenv("PIO_PREFER_LEADER") != "" || v.InConfig("prefer_leader")) {
		c.PreferLeader = v.GetBool("prefer_leader")
	} else {
		c.PreferLeader = !c.Worker
	}
	return c, nil
}
