package trust

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/uuid"
)

// GossipKeySize is the size of a gossip key: AES-256.
const GossipKeySize = 32

// MaxGossipKeys bounds the keyring: a rotation holds two keys at most, and an
// interrupted one a third.
const MaxGossipKeys = 4

// Certificates carry no usable expiry: a Raspberry Pi has no real-time clock
// and may boot with a clock years off, which must not cut it off its cluster.
// A node's certificate is withdrawn by removing the node (its ID is then
// refused), not by time.
var (
	notBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Keyring is the gossip encryption keyring: every key a member accepts, and
// the one it encrypts with.
type Keyring struct {
	Keys    [][]byte `json:"keys"`
	Primary []byte   `json:"primary"`
}

// Validate checks that the keyring has 1..MaxGossipKeys keys of GossipKeySize
// bytes, none twice, and that its primary key is one of them.
func (k Keyring) Validate() error {
	if len(k.Keys) == 0 || len(k.Keys) > MaxGossipKeys {
		return fmt.Errorf("a gossip keyring holds 1 to %d keys, not %d", MaxGossipKeys, len(k.Keys))
	}
	seen := map[string]bool{}
	primary := false
	for _, key := range k.Keys {
		if len(key) != GossipKeySize {
			return fmt.Errorf("a gossip key is %d bytes, not %d", GossipKeySize, len(key))
		}
		if seen[string(key)] {
			return errors.New("a gossip key is in the keyring twice")
		}
		seen[string(key)] = true
		primary = primary || subtle.ConstantTimeCompare(key, k.Primary) == 1
	}
	if !primary {
		return errors.New("the primary gossip key is not in the keyring")
	}
	return nil
}

// Clone returns a deep copy of the keyring.
func (k Keyring) Clone() Keyring {
	out := Keyring{Primary: append([]byte(nil), k.Primary...)}
	for _, key := range k.Keys {
		out.Keys = append(out.Keys, append([]byte(nil), key...))
	}
	return out
}

// NewGossipKey returns a new random gossip key.
func NewGossipKey() ([]byte, error) {
	k := make([]byte, GossipKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// Bundle is one node's share of the cluster's secrets. A Bundle is never
// changed after it is made: a change makes a new one (With...).
type Bundle struct {
	// ClusterID names the cluster; gossip is labelled with it.
	ClusterID string
	// NodeID is the node this bundle's certificate was issued to.
	NodeID string
	// CA is the cluster CA's certificate.
	CA *x509.Certificate
	// Cert is this node's certificate and key, followed by the CA's certificate.
	Cert tls.Certificate
	// JoinSecret is what a joining node proves it knows (inside the join token).
	JoinSecret string
	// APIToken is the bearer token of writes to the HTTP API.
	APIToken string
	// Gossip is the gossip keyring as this node last knew it.
	Gossip Keyring
	// Phase is "" when the node uses these secrets for everything; while an
	// open cluster is being secured it is how far this node is: PhaseAcceptTLS
	// or PhaseDialTLS.
	Phase string

	caKey ed25519.PrivateKey
	pool  *x509.CertPool
}

// NewCluster makes the secrets of a new cluster whose first node is nodeID:
// a CA, the node's certificate, a join secret, an API token and a gossip key.
func NewCluster(nodeID string) (*Bundle, error) {
	pub, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	clusterID := uuid.NewString()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pio cluster CA " + clusterID, Organization: []string{"pio"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("make the cluster CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	gk, err := NewGossipKey()
	if err != nil {
		return nil, err
	}
	b := &Bundle{ClusterID: clusterID, NodeID: nodeID, CA: ca, caKey: caKey, JoinSecret: newSecret(), APIToken: "pioapi_" + newSecret(),
		Gossip: Keyring{Keys: [][]byte{gk}, Primary: gk}}
	b.pool = x509.NewCertPool()
	b.pool.AddCert(ca)
	nodeKey, err := NewNodeKey()
	if err != nil {
		return nil, err
	}
	certDER, err := b.issue(nodeID, nodeKey.Public())
	if err != nil {
		return nil, err
	}
	b.Cert = tls.Certificate{Certificate: [][]byte{certDER, ca.Raw}, PrivateKey: nodeKey}
	return b, nil
}

// NewNodeKey makes a node's private key; its public half goes into the node's
// certificate, the private half never leaves the node.
func NewNodeKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// issue signs a certificate for nodeID's public key with the cluster CA.
func (b *Bundle) issue(nodeID string, pub crypto.PublicKey) ([]byte, error) {
	if b.caKey == nil {
		return nil, errors.New("this node does not hold the cluster CA's key")
	}
	if _, err := uuid.Parse(nodeID); err != nil {
		return nil, fmt.Errorf("node ID %q is not a UUID", nodeID)
	}
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, errors.New("a node key must be an Ed25519 public key")
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: nodeID, Organization: []string{"pio"}, OrganizationalUnit: []string{b.ClusterID}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, b.CA, pub, b.caKey)
}

// Grant is what a member hands a node it admits: the cluster's secrets and a
// certificate issued to the node's own public key. It travels inside mutual
// TLS (or, once, over the old channel of an open cluster being secured).
type Grant struct {
	ClusterID  string  `json:"cluster_id"`
	CACert     string  `json:"ca_cert"`
	CAKey      string  `json:"ca_key"`
	NodeCert   string  `json:"node_cert"`
	JoinSecret string  `json:"join_secret"`
	APIToken   string  `json:"api_token"`
	Gossip     Keyring `json:"gossip"`
}

// Grant issues a certificate to nodeID's public key and returns it with the
// cluster's secrets; gossip is the keyring the cluster uses now.
func (b *Bundle) Grant(nodeID string, pub crypto.PublicKey, gossip Keyring) (Grant, error) {
	der, err := b.issue(nodeID, pub)
	if err != nil {
		return Grant{}, err
	}
	caKey, err := x509.MarshalPKCS8PrivateKey(b.caKey)
	if err != nil {
		return Grant{}, err
	}
	return Grant{
		ClusterID: b.ClusterID, CACert: pemOf("CERTIFICATE", b.CA.Raw), CAKey: pemOf("PRIVATE KEY", caKey),
		NodeCert: pemOf("CERTIFICATE", der), JoinSecret: b.JoinSecret, APIToken: b.APIToken, Gossip: gossip.Clone(),
	}, nil
}

// Open turns a grant into this node's bundle, with the node's private key. It
// checks that the certificate was issued by the granted CA to nodeID and key.
func (g Grant) Open(nodeID string, key ed25519.PrivateKey) (*Bundle, error) {
	caDER, err := pemBytes(g.CACert, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("%w: CA certificate: %v", ErrDamaged, err)
	}
	keyDER, err := pemBytes(g.CAKey, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("%w: CA key: %v", ErrDamaged, err)
	}
	caKey, ok := k.(ed25519.PrivateKey)
	if !ok || !caKey.Public().(ed25519.PublicKey).Equal(ca.PublicKey) {
		return nil, fmt.Errorf("%w: the CA key does not match the CA certificate", ErrDamaged)
	}
	certDER, err := pemBytes(g.NodeCert, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	b := &Bundle{ClusterID: g.ClusterID, NodeID: nodeID, CA: ca, caKey: caKey, JoinSecret: g.JoinSecret, APIToken: g.APIToken,
		Gossip: g.Gossip.Clone(), Cert: tls.Certificate{Certificate: [][]byte{certDER, ca.Raw}, PrivateKey: key}}
	b.pool = x509.NewCertPool()
	b.pool.AddCert(ca)
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("%w: node certificate: %v", ErrDamaged, err)
	}
	if pub, ok := leaf.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: the node certificate is not for this node's key", ErrDamaged)
	}
	if id, err := b.VerifyPeer([]*x509.Certificate{leaf}); err != nil || id != nodeID {
		return nil, fmt.Errorf("%w: the node certificate is not the CA's for node %s (%v)", ErrDamaged, nodeID, err)
	}
	if b.ClusterID == "" || b.JoinSecret == "" || b.APIToken == "" {
		return nil, fmt.Errorf("%w: incomplete secrets", ErrDamaged)
	}
	if err := b.Gossip.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	b.Cert.Leaf = leaf
	return b, nil
}

// The phases of a node of an open cluster being secured (Bundle.Phase).
const (
	PhaseAcceptTLS = "accept-tls"
	PhaseDialTLS   = "dial-tls"
)

// WithPhase returns a copy of the bundle at phase p ("" once secure).
func (b *Bundle) WithPhase(p string) *Bundle {
	c := *b
	c.Phase = p
	return &c
}

// WithGossip returns a copy of the bundle holding keyring k.
func (b *Bundle) WithGossip(k Keyring) *Bundle {
	c := *b
	c.Gossip = k.Clone()
	return &c
}

// CAHash is the SHA-256 of the CA's certificate, in hex: what a join token pins.
func (b *Bundle) CAHash() string { return CAHash(b.CA.Raw) }

// CAHash returns the hex SHA-256 of a CA certificate (DER).
func CAHash(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// Pool returns the pool holding the cluster CA, to verify peers with.
func (b *Bundle) Pool() *x509.CertPool { return b.pool }

// VerifyPeer checks that a peer's certificate chain (leaf first) was issued
// by this cluster's CA for a pio node, and returns the node ID it names.
func (b *Bundle) VerifyPeer(chain []*x509.Certificate) (nodeID string, err error) {
	if len(chain) == 0 {
		return "", errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: b.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "", err
	}
	id := chain[0].Subject.CommonName
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("the certificate names %q, not a node ID", id)
	}
	return id, nil
}

// CheckJoinSecret reports whether s is this cluster's join secret (in constant time).
func (b *Bundle) CheckJoinSecret(s string) bool {
	return s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(b.JoinSecret)) == 1
}

// CheckAPIToken reports whether t is this cluster's API token (in constant time).
func (b *Bundle) CheckAPIToken(t string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(b.APIToken)) == 1
}

// JoinToken returns the token that lets a node join this cluster.
func (b *Bundle) JoinToken() string { return Token{CAHash: b.CAHash(), Secret: b.JoinSecret}.String() }

func pemOf(kind string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

func pemBytes(s, kind string) ([]byte, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != kind {
		return nil, fmt.Errorf("%w: no %s", ErrDamaged, kind)
	}
	return blk.Bytes, nil
}
