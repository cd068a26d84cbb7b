package trust

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// FileName is the file in the data dir that holds a node's secrets (0600).
const FileName = "trust.json"

// fileFormat is the content of trust.json.
type fileFormat struct {
	Version int    `json:"version"`
	NodeID  string `json:"node_id"`
	NodeKey string `json:"node_key"`
	Phase   string `json:"phase,omitempty"`
	Grant
}

// marshal encodes the bundle as trust.json.
func (b *Bundle) marshal() ([]byte, error) {
	key, ok := b.Cert.PrivateKey.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("the node key is not an Ed25519 key")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	caKey, err := x509.MarshalPKCS8PrivateKey(b.caKey)
	if err != nil {
		return nil, err
	}
	f := fileFormat{Version: 1, NodeID: b.NodeID, NodeKey: pemOf("PRIVATE KEY", keyDER), Phase: b.Phase, Grant: Grant{
		ClusterID: b.ClusterID, CACert: pemOf("CERTIFICATE", b.CA.Raw), CAKey: pemOf("PRIVATE KEY", caKey),
		NodeCert: pemOf("CERTIFICATE", b.Cert.Certificate[0]), JoinSecret: b.JoinSecret, APIToken: b.APIToken, Gossip: b.Gossip,
	}}
	return json.MarshalIndent(f, "", "  ")
}

// Load reads the secrets kept in dataDir; ErrNoSecrets when there are none.
func Load(dataDir string) (*Bundle, error) {
	p := filepath.Join(dataDir, FileName)
	data, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("%w in %s", ErrNoSecrets, dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	b, err := unmarshal(data, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// unmarshal reads a bundle in the format of trust.json; with nodeID set, it
// must be that node's.
func unmarshal(data []byte, nodeID string) (*Bundle, error) {
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%w: version %d (a newer pio?)", ErrDamaged, f.Version)
	}
	if nodeID != "" && f.NodeID != nodeID {
		return nil, fmt.Errorf("%w: the secrets are node %s's, not %s's", ErrDamaged, f.NodeID, nodeID)
	}
	keyDER, err := pemBytes(f.NodeKey, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	key, ok := k.(ed25519.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: node key", ErrDamaged)
	}
	b, err := f.Grant.Open(f.NodeID, key)
	if err != nil {
		return nil, err
	}
	b.Phase = f.Phase
	return b, nil
}

// Share makes another member's share of this cluster's secrets, key and
// certificate included, at phase: what `pio security enable` hands each
// member of an open cluster once, over the cluster's old channel.
func (b *Bundle) Share(nodeID, phase string) ([]byte, error) {
	key, err := NewNodeKey()
	if err != nil {
		return nil, err
	}
	g, err := b.Grant(nodeID, key.Public(), b.Gossip)
	if err != nil {
		return nil, err
	}
	nb, err := g.Open(nodeID, key)
	if err != nil {
		return nil, err
	}
	return nb.WithPhase(phase).marshal()
}

// OpenShare reads the share Share made for nodeID.
func OpenShare(data []byte, nodeID string) (*Bundle, error) { return unmarshal(data, nodeID) }

// Store holds this node's bundle, in memory and in DATA_DIR/trust.json.
// Readers (TLS handshakes, the API's token check) see a swap atomically;
// writes are serialized. A nil bundle means the node holds no secrets.
type Store struct {
	dir string
	mu  sync.Mutex
	cur atomic.Pointer[Bundle]
}

// OpenStore loads the secrets kept in dataDir, if any.
func OpenStore(dataDir string) (*Store, error) {
	s := &Store{dir: dataDir}
	b, err := Load(dataDir)
	switch {
	case errors.Is(err, ErrNoSecrets):
	case err != nil:
		return nil, fmt.Errorf("%w (restore the data dir from a backup, or remove it and join the node again)", err)
	default:
		s.cur.Store(b)
	}
	return s, nil
}

// Current returns this node's bundle, or nil when it holds no secrets.
func (s *Store) Current() *Bundle { return s.cur.Load() }

// Set writes b durably and makes it current; nil removes the secrets.
func (s *Store) Set(b *Bundle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.dir, FileName)
	if b == nil {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
		s.cur.Store(nil)
		return nil
	}
	if err := Save(s.dir, b); err != nil {
		return fmt.Errorf("save the cluster secrets: %w", err)
	}
	s.cur.Store(b)
	return nil
}

// Save writes b into dir's trust.json (a backup of discarded state, or a
// data dir being prepared).
func Save(dir string, b *Bundle) error {
	data, err := b.marshal()
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, FileName), data)
}

// writeFileSync writes a private file atomically and durably (temp file,
// fsync, rename, fsync of the directory).
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
