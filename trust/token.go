package trust

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// tokenPrefix starts every join token; it names the format's version.
const tokenPrefix = "PIO1."

// Token is a parsed join token: the hash of the CA the joining node must find,
// and the secret (or a one-time invitation ticket) it proves it knows.
type Token struct {
	CAHash string
	Secret string
}

// String returns the token as `pio token` prints it: PIO1.<ca-hash>.<secret>.
func (t Token) String() string { return tokenPrefix + t.CAHash + "." + t.Secret }

// ParseToken reads a join token, tolerating spaces around it.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: it must start with %s (print one with `sudo pio token` on a member)", ErrBadToken, tokenPrefix)
	}
	hash, secret, ok := strings.Cut(rest, ".")
	if !ok || len(hash) != 64 || secret == "" || len(secret) > 128 {
		return Token{}, fmt.Errorf("%w: it must be %s<64 hex digits>.<secret>", ErrBadToken, tokenPrefix)
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return Token{}, fmt.Errorf("%w: the CA hash is not hex", ErrBadToken)
	}
	for _, r := range secret {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return Token{}, fmt.Errorf("%w: the secret has a character %q that no token has", ErrBadToken, r)
		}
	}
	return Token{CAHash: strings.ToLower(hash), Secret: secret}, nil
}

// NewTicket returns a new one-time invitation secret.
func NewTicket() string { return newSecret() }

// VerifyPinned checks a server's certificate chain (leaf first, the CA last)
// against a pinned CA hash: the CA's certificate must hash to caHash and have
// issued the leaf. It returns the CA's certificate.
func VerifyPinned(chain []*x509.Certificate, caHash string) (*x509.Certificate, error) {
	if len(chain) < 2 {
		return nil, fmt.Errorf("the node sent no CA certificate")
	}
	ca := chain[len(chain)-1]
	if got := CAHash(ca.Raw); got != caHash {
		return nil, fmt.Errorf("%w: its cluster CA is %s…, the token's is %s…", ErrOtherCluster, got[:12], caHash[:12])
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("that node's certificate is not its CA's: %w", err)
	}
	return ca, nil
}
