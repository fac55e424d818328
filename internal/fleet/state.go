package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cellgate/cellgate/internal/atomicfile"
)

// fleetState is the state file: the simulated devices' ids and tokens, so a second run
// heartbeats as the same devices. It holds device tokens: it is written with mode 0600.
type fleetState struct {
	Version int           `json:"version"`
	APIURL  string        `json:"api_url"`
	Devices []stateDevice `json:"devices"`
}

type stateDevice struct {
	Name  string `json:"name"`
	ID    string `json:"id"`
	Token string `json:"token"`
}

const stateVersion = 1

// loadState reads the state file; a missing file is an empty state.
func loadState(path string) (fleetState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fleetState{Version: stateVersion}, nil
	}
	if err != nil {
		return fleetState{}, fmt.Errorf("read state file: %w", err)
	}
	var s fleetState
	if err := json.Unmarshal(b, &s); err != nil {
		return fleetState{}, fmt.Errorf("state file %s: %w (delete it to start over)", path, err)
	}
	if s.Version != stateVersion {
		return fleetState{}, fmt.Errorf("state file %s has version %d, want %d (delete it to start over)", path, s.Version, stateVersion)
	}
	return s, nil
}

// save writes the state atomically (a temp file renamed over the old one), mode 0600: it holds
// device tokens.
func (s fleetState) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("state file directory: %w", err)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}
