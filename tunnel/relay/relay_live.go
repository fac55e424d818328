package relay

import "github.com/google/uuid"

// DeviceLive reports whether the device has a live session: a current session and endpoint,
// heard from within SessionTimeout. It is the control API's GET /devices/{id} (DeviceLiveness)
// and reads only atomics, so it never waits for the relay's writers.
func (r *DataPlane) DeviceLive(id uuid.UUID) bool {
	devs := r.devices.Load()
	if devs == nil {
		return false
	}
	p := (*devs)[id]
	return p != nil && r.live(p, r.clock.Load())
}
