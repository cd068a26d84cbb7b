package cluster

import "testing"

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.NodeID, c.DataDir, c.Streams = "x", t.TempDir(), &tcpStreams{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 2, 4, -1} {
		c.MaxVoters = n
		if err := c.Validate(); err == nil {
			t.Errorf("max_voters %d accepted", n)
		}
	}
}
