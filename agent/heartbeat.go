package agent

import "time"

// DefaultInterval is the time between two heartbeats of a device: of the reference device, and
// of the simulated ones (internal/fleet) unless told otherwise.
const DefaultInterval = 30 * time.Second
