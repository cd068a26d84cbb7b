package fsm

import (
	"bytes"
	"fmt"
)

// CmdSetGossipKeys replaces the cluster's gossip keyring. Every node installs
// it when it applies it, so a key rotation reaches nodes that were down too.
const CmdSetGossipKeys CommandType = "set_gossip_keys"

// GossipKeys is the payload of CmdSetGossipKeys: every key members accept,
// and the one they encrypt with.
type GossipKeys struct {
	Keys    [][]byte `json:"keys"`
	Primary []byte   `json:"primary"`
}

// maxGossipKeys bounds the replicated keyring.
const maxGossipKeys = 4

// validate checks a keyring: 1 to 4 keys of 32 bytes, none twice, the primary among them.
func (k GossipKeys) validate() error {
	if len(k.Keys) == 0 || len(k.Keys) > maxGossipKeys {
		return fmt.Errorf("%w: %d gossip keys", ErrBadPayload, len(k.Keys))
	}
	primary := false
	for i, key := range k.Keys {
		if len(key) != 32 {
			return fmt.Errorf("%w: a gossip key of %d bytes", ErrBadPayload, len(key))
		}
		for _, other := range k.Keys[:i] {
			if bytes.Equal(key, other) {
				return fmt.Errorf("%w: a gossip key twice", ErrBadPayload)
			}
		}
		primary = primary || bytes.Equal(key, k.Primary)
	}
	if !primary {
		return fmt.Errorf("%w: the primary gossip key is not in the keyring", ErrBadPayload)
	}
	return nil
}

func (k GossipKeys) clone() *GossipKeys {
	c := &GossipKeys{Primary: append([]byte(nil), k.Primary...)}
	for _, key := range k.Keys {
		c.Keys = append(c.Keys, append([]byte(nil), key...))
	}
	return c
}

// GossipKeyring returns the cluster's gossip keyring; ok is false until one was set.
func (f *FSM) GossipKeyring() (k GossipKeys, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.s.gossip == nil {
		return GossipKeys{}, false
	}
	return *f.s.gossip.clone(), true
}
