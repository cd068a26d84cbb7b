package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// nodeIDFile is the file in the data dir that keeps this node's ID.
const nodeIDFile = "node-id"

// LoadOrCreateNodeID returns the node ID kept in dataDir, making a new random
// one (a UUID) on first start. The ID never changes afterwards: it is how the
// cluster recognises this node across restarts, address changes and renames.
func LoadOrCreateNodeID(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	p := filepath.Join(dataDir, nodeIDFile)
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("%s holds %q, not a node ID: restore it or remove the data dir", p, id)
		}
		return id, nil
	}
	if !os.IsNotExist(err) {
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := uuid.NewString()
	if err := writeFileSync(p, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write node ID: %w", err)
	}
	return id, nil
}
