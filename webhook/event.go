package webhook

import "time"

// Event types.
const (
	EventDeviceOffline = "device.offline"
	EventDeviceOnline  = "device.online"
	EventTest          = "webhook.test"
)

// Event is the JSON body of every delivery. Marshalling the same Event always gives the same
// bytes, so every retry carries the body its signature was made for.
type Event struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is the payload of device events (and of the test event, which names no device).
type EventData struct {
	DeviceID        string     `json:"device_id,omitempty"`
	DeviceName      string     `json:"device_name,omitempty"`
	OperatorID      string     `json:"operator_id"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at,omitempty"`
	OfflineSince    *time.Time `json:"offline_since,omitempty"`
	BackOnlineAt    *time.Time `json:"back_online_at,omitempty"`
	OutageSeconds   *int64     `json:"outage_seconds,omitempty"`
	Message         string     `json:"message,omitempty"`
}
