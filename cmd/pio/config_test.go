package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/agent"
)

func loadWith(t *testing.T, args []string) agent.Config {
	t.Helper()
	cmd := newServeCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadServeConfig(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pio.yaml")
	os.WriteFile(file, []byte("name: from-file\ndata_dir: /file/dir\nhttp_addr: 10.0.0.1:9000\ncluster:\n  max_voters: 3\nworker: false\n"), 0o644)

	// File only.
	cfg := loadWith(t, []string{"--config", file})
	if cfg.Name != "from-file" || cfg.DataDir != "/file/dir" || cfg.HTTPAddr != "10.0.0.1:9000" || cfg.MaxVoters != 3 || cfg.Worker {
		t.Fatalf("file: %+v", cfg)
	}
	// A node that is not a worker prefers to lead unless told otherwise.
	if !cfg.PreferLeader {
		t.Fatal("worker=false should default prefer_leader to true")
	}
	// Environment beats the file.
	t.Setenv("PIO_NAME", "from-env")
	t.Setenv("PIO_CLUSTER_MAX_VOTERS", "7")
	t.Setenv("PIO_RAFT_HEARTBEAT_TIMEOUT", "450ms")
	t.Setenv("PIO_TIMER_SLACK", "5ms")
	cfg = loadWith(t, []string{"--config", file})
	if cfg.Name != "from-env" || cfg.MaxVoters != 7 || cfg.Heartbeat != 450*time.Millisecond || cfg.DataDir != "/file/dir" || cfg.TimerSlack != 5*time.Millisecond {
		t.Fatalf("env: %+v", cfg)
	}
	// Flags beat both.
	cfg = loadWith(t, []string{"--config", file, "--name", "from-flag", "--prefer-leader=false"})
	if cfg.Name != "from-flag" || cfg.PreferLeader {
		t.Fatalf("flag: %+v", cfg)
	}
	// PIO_CONFIG names the file.
	t.Setenv("PIO_CONFIG", file)
	if cfg = loadWith(t, nil); cfg.DataDir != "/file/dir" {
		t.Fatalf("PIO_CONFIG: %+v", cfg)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	cfg := loadWith(t, nil)
	d := agent.DefaultConfig()
	if cfg.HTTPAddr != d.HTTPAddr || cfg.RaftAddr != ":8300" || cfg.GossipAddr != ":8301" || cfg.DataDir != "/var/lib/pio" || !cfg.Worker || cfg.PreferLeader || cfg.Hardware != "auto" || cfg.TimerSlack != 2*time.Millisecond {
		t.Fatalf("defaults: %+v", cfg)
	}
	bad := []struct {
		mod  func(*agent.Config)
		want string
	}{
		{func(c *agent.Config) { c.Name = "bad name" }, "letters, digits"},
		{func(c *agent.Config) { c.Name = "10.0.0.1" }, "letters, digits"},
		{func(c *agent.Config) { c.Hardware = "arduino" }, "auto, sim or rpi"},
		{func(c *agent.Config) { c.HTTPAddr = "8080" }, "HOST:PORT"},
		{func(c *agent.Config) { c.AdvertiseAddr = "pi.local" }, "not an IP"},
		{func(c *agent.Config) { c.TimerSlack = 20 * time.Millisecond }, "timer_slack is 20ms"},
		{func(c *agent.Config) { c.TimerSlack = -time.Millisecond }, "timer_slack is -1ms"},
	}
	for _, b := range bad {
		c := agent.DefaultConfig()
		c.Name = "ok"
		b.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("validate: %v, want %q", err, b.want)
		}
	}
}

// api.max_event_streams is declared like every setting: flag, PIO_ variable,
// file key, default; below 1 it is refused.
func TestMaxEventStreamsSetting(t *testing.T) {
	if cfg := loadWith(t, nil); cfg.MaxEventStreams != 64 {
		t.Fatalf("default: %d", cfg.MaxEventStreams)
	}
	file := filepath.Join(t.TempDir(), "pio.yaml")
	os.WriteFile(file, []byte("api:\n  max_event_streams: 3\n"), 0o600)
	if cfg := loadWith(t, []string{"--config", file}); cfg.MaxEventStreams != 3 {
		t.Fatalf("file: %d", cfg.MaxEventStreams)
	}
	t.Setenv("PIO_API_MAX_EVENT_STREAMS", "5")
	if cfg := loadWith(t, []string{"--config", file}); cfg.MaxEventStreams != 5 {
		t.Fatalf("env: %d", cfg.MaxEventStreams)
	}
	cfg := loadWith(t, []string{"--config", file, "--max-event-streams", "7"})
	if cfg.MaxEventStreams != 7 || cfg.HTTPLimits != agent.DefaultHTTPLimits() {
		t.Fatalf("flag: %d, limits %+v", cfg.MaxEventStreams, cfg.HTTPLimits)
	}
	cfg.Name, cfg.MaxEventStreams = "ok", 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--max-event-streams") {
		t.Fatalf("0 streams: %v", err)
	}
}

// mqtt.addr and mqtt.ws_addr are declared like every setting: Pioreactor's
// ports by default, then file, PIO_ variable and flag; empty disables; a
// malformed address is refused.
func TestMQTTSettings(t *testing.T) {
	if cfg := loadWith(t, nil); cfg.MQTTAddr != ":1883" || cfg.MQTTWSAddr != ":9001" {
		t.Fatalf("defaults: %q %q", cfg.MQTTAddr, cfg.MQTTWSAddr)
	}
	file := filepath.Join(t.TempDir(), "pio.yaml")
	os.WriteFile(file, []byte("mqtt:\n  addr: 10.0.0.1:1884\n  ws_addr: \"\"\n"), 0o600)
	if cfg := loadWith(t, []string{"--config", file}); cfg.MQTTAddr != "10.0.0.1:1884" || cfg.MQTTWSAddr != "" {
		t.Fatalf("file: %q %q", cfg.MQTTAddr, cfg.MQTTWSAddr)
	}
	t.Setenv("PIO_MQTT_ADDR", ":1885")
	t.Setenv("PIO_MQTT_WS_ADDR", ":9002")
	if cfg := loadWith(t, []string{"--config", file}); cfg.MQTTAddr != ":1885" || cfg.MQTTWSAddr != ":9002" {
		t.Fatalf("env: %q %q", cfg.MQTTAddr, cfg.MQTTWSAddr)
	}
	cfg := loadWith(t, []string{"--mqtt-addr", "", "--mqtt-ws-addr", ":9003"})
	if cfg.MQTTAddr != "" || cfg.MQTTWSAddr != ":9003" {
		t.Fatalf("flag: %q %q", cfg.MQTTAddr, cfg.MQTTWSAddr)
	}
	cfg.Name, cfg.MQTTAddr = "ok", "1883"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--mqtt-addr") {
		t.Fatalf("bad address: %v", err)
	}
}

// mdns.advertise is declared like every setting: on by default, then file,
// PIO_MDNS_ADVERTISE and --mdns-advertise.
func TestMDNSAdvertiseSetting(t *testing.T) {
	if cfg := loadWith(t, nil); !cfg.MDNSAdvertise {
		t.Fatal("advertising should be on by default")
	}
	file := filepath.Join(t.TempDir(), "pio.yaml")
	os.WriteFile(file, []byte("mdns:\n  advertise: false\n"), 0o600)
	if cfg := loadWith(t, []string{"--config", file}); cfg.MDNSAdvertise {
		t.Fatal("file: still on")
	}
	t.Setenv("PIO_MDNS_ADVERTISE", "true")
	if cfg := loadWith(t, []string{"--config", file}); !cfg.MDNSAdvertise {
		t.Fatal("env: still off")
	}
	if cfg := loadWith(t, []string{"--config", file, "--mdns-advertise=false"}); cfg.MDNSAdvertise {
		t.Fatal("flag: still on")
	}
}
