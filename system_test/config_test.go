package system

import (
	"strings"
	"testing"

	"github.com/pioreactor/pio/agent"
)

func TestSecondServeOnSameDataDirRefused(t *testing.T) {
	n := startNode(t, "owner")
	cfg := agent.DefaultConfig()
	cfg.Name, cfg.DataDir = "intruder", n.cfg.DataDir
	ip := freshIP()
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr, cfg.MQTTAddr, cfg.MQTTWSAddr = ip+":0", ip+":0", ip+":0", ip+":0", ""
	_, err := agent.Start(cfg, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node on the same data dir: %v", err)
	}
}
