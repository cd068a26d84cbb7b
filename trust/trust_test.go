package trust

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestNewClusterGrantOpenAndVerify(t *testing.T) {
	first := uuid.NewString()
	b, err := NewCluster(first)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(b.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if id, err := b.VerifyPeer([]*x509.Certificate{leaf}); err != nil || id != first {
		t.Fatalf("own certificate: %q %v", id, err)
	}

	// A joining node sends only its public key and gets a certificate for it.
	second := uuid.NewString()
	key, _ := NewNodeKey()
	g, err := b.Grant(second, key.Public(), b.Gossip)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := g.Open(second, key)
	if err != nil {
		t.Fatal(err)
	}
	if nb.ClusterID != b.ClusterID || nb.APIToken != b.APIToken || nb.CAHash() != b.CAHash() || nb.JoinToken() != b.JoinToken() {
		t.Fatal("the granted bundle is not the cluster's")
	}
	if id, err := b.VerifyPeer([]*x509.Certificate{nb.Cert.Leaf}); err != nil || id != second {
		t.Fatalf("granted certificate seen by the first node: %q %v", id, err)
	}
	// The grant is for this key only.
	other, _ := NewNodeKey()
	if _, err := g.Open(second, other); err == nil {
		t.Fatal("a grant opened with another node's key")
	}
	if _, err := g.Open(uuid.NewString(), key); err == nil {
		t.Fatal("a grant opened for another node ID")
	}

	// Another cluster's certificates are refused.
	o, _ := NewCluster(uuid.NewString())
	ol, _ := x509.ParseCertificate(o.Cert.Certificate[0])
	if _, err := b.VerifyPeer([]*x509.Certificate{ol}); err == nil {
		t.Fatal("another cluster's node was verified")
	}
	// A certificate for something that is not a node key or ID is not issued.
	if _, err := b.Grant("not-a-uuid", key.Public(), b.Gossip); err == nil {
		t.Fatal("issued to a non-UUID")
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if _, err := b.Grant(uuid.NewString(), pub, b.Gossip); err != nil {
		t.Fatal(err)
	}
}

func TestTokenRoundTripAndBadTokens(t *testing.T) {
	b, err := NewCluster(uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken("  " + b.JoinToken() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != b.CAHash() || !b.CheckJoinSecret(tok.Secret) {
		t.Fatal("parsed token does not match")
	}
	if b.CheckJoinSecret(tok.Secret+"x") || b.CheckJoinSecret("") || b.CheckAPIToken("") || !b.CheckAPIToken(b.APIToken) {
		t.Fatal("secret checks wrong")
	}
	for _, bad := range []string{"", "K10abc::x", "PIO1.", "PIO1.abc.def", "PIO1." + strings.Repeat("z", 64) + ".s",
		"PIO1." + strings.Repeat("a", 64) + ".", "PIO1." + strings.Repeat("a", 64) + ".a b", "PIO1." + strings.Repeat("a", 64) + "." + strings.Repeat("s", 200)} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestVerifyPinned(t *testing.T) {
	b, _ := NewCluster(uuid.NewString())
	o, _ := NewCluster(uuid.NewString())
	chain := func(x *Bundle) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range x.Cert.Certificate {
			c, _ := x509.ParseCertificate(der)
			out = append(out, c)
		}
		return out
	}
	if ca, err := VerifyPinned(chain(b), b.CAHash()); err != nil || ca.Equal(b.CA) == false {
		t.Fatalf("own chain: %v", err)
	}
	if _, err := VerifyPinned(chain(o), b.CAHash()); !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("another cluster's chain: %v", err)
	}
	// A chain whose leaf is of another CA but which carries our CA at its end.
	mixed := append(chain(o)[:1], b.CA)
	if _, err := VerifyPinned(mixed, b.CAHash()); err == nil {
		t.Fatal("a leaf of another CA passed with our CA appended")
	}
}

func TestStorePersistsPrivately(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil || s.Current() != nil {
		t.Fatalf("empty dir: %v %v", s.Current(), err)
	}
	b, _ := NewCluster(uuid.NewString())
	if err := s.Set(b); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("trust.json: %v %v", fi.Mode(), err)
	}
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := s2.Current()
	if got == nil || got.JoinToken() != b.JoinToken() || got.APIToken != b.APIToken || got.NodeID != b.NodeID {
		t.Fatal("reloaded secrets differ")
	}
	// The reloaded bundle can still admit nodes (it kept the CA key).
	key, _ := NewNodeKey()
	if _, err := got.Grant(uuid.NewString(), key.Public(), got.Gossip); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte("{garbage"), 0o600)
	if _, err := OpenStore(dir); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged file: %v", err)
	}
	if err := s.Set(nil); err != nil || s.Current() != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrNoSecrets) {
		t.Fatalf("after removal: %v", err)
	}
}

func TestKeyringValidate(t *testing.T) {
	k1, _ := NewGossipKey()
	k2, _ := NewGossipKey()
	good := Keyring{Keys: [][]byte{k1, k2}, Primary: k2}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]Keyring{
		"empty":       {},
		"short key":   {Keys: [][]byte{k1[:16]}, Primary: k1[:16]},
		"twice":       {Keys: [][]byte{k1, k1}, Primary: k1},
		"no primary":  {Keys: [][]byte{k1}, Primary: k2},
		"too many":    {Keys: [][]byte{k1, k2, {1}, {2}, {3}}, Primary: k1},
		"nil primary": {Keys: [][]byte{k1}},
	} {
		if err := k.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
