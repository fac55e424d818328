package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cellgate/cellgate/internal/atomicfile"
)

// stateVersion is the version of the device's state file (deviceState).
const stateVersion = 1

// saveJSON writes v as JSON to path atomically (a temp file renamed over the old one), mode
// 0600: state files hold device tokens and keys.
func saveJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("state file directory: %w", err)
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}
