package webhook

import "time"

// Event types.
const (
	EventDeviceOffline = "device.offline"
	EventDeviceOnline  = "device.online"
	EventTest          = "webhook.test"
	// EventQuotaWarning: a connection has used 80 % of its limit (once per usage epoch).
	EventQuotaWarning = "connection.quota_warning"
	// EventQuotaExceeded: a connection reached its limit and was cut off (once per epoch).
	EventQuotaExceeded = "connection.quota_exceeded"
)

// Event is the JSON body of every delivery. Marshalling the same Event always gives the same
// bytes, so every retry carries the body its signature was made for.
type Event struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is the payload of device and connection events (and of the test event, which
// names neither).
type EventData struct {
	DeviceID        string     `json:"device_id,omitempty"`
	DeviceName      string     `json:"device_name,omitempty"`
	OperatorID      string     `json:"operator_id"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at,omitempty"`
	OfflineSince    *time.Time `json:"offline_since,omitempty"`
	BackOnlineAt    *time.Time `json:"back_online_at,omitempty"`
	OutageSeconds   *int64     `json:"outage_seconds,omitempty"`
	Message         string     `json:"message,omitempty"`
	// Connection events.
	ConnectionID   string `json:"connection_id,omitempty"`
	ConnectionName string `json:"connection_name,omitempty"`
	Username       string `json:"username,omitempty"`
	UsageEpoch     int64  `json:"usage_epoch,omitempty"`
	// BandwidthUsed and BandwidthLimit are bytes; they are pointers so that 0 is sent.
	BandwidthUsed  *int64 `json:"bandwidth_used,omitempty"`
	BandwidthLimit *int64 `json:"bandwidth_limit,omitempty"`
}
