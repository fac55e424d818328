package control

import (
	"net/netip"

	"github.com/google/uuid"
)

// The JSON bodies of the control API, shared by the server and the Client. Answers have the
// fields of the exported types they carry (ClientRoute, RemovedRoute, ConnectionState), so
// each side converts between the two.

// clientResponse answers POST /clients: the route and its connection's state.
type clientResponse struct {
	ClientIP     netip.Addr `json:"client_ip"`
	ConnectionID uuid.UUID  `json:"connection_id"`
	DeviceID     uuid.UUID  `json:"device_id"`
	SessionID    uuid.UUID  `json:"session_id"`
	Epoch        uint64     `json:"epoch"`
	Limit        int64      `json:"limit"`
	Used         int64      `json:"used"`
}

// removedResponse answers DELETE /clients/{ip}: the removed route's final usage.
type removedResponse struct {
	ClientIP     netip.Addr `json:"client_ip"`
	ConnectionID uuid.UUID  `json:"connection_id"`
	SessionID    uuid.UUID  `json:"session_id"`
	Epoch        uint64     `json:"epoch"`
	RxBytes      int64      `json:"rx_bytes"`
	TxBytes      int64      `json:"tx_bytes"`
}

// connectionResponse answers block, unblock and limit: the connection's state after the change.
type connectionResponse struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Blocked      bool      `json:"blocked"`
	Epoch        uint64    `json:"epoch"`
	Used         int64     `json:"used"`
	Limit        int64     `json:"limit"`
}

// resetResponse answers POST /connections/{id}/reset. Previous is the final state of the epoch
// that ended, absent when nothing was reset.
type resetResponse struct {
	ConnectionID uuid.UUID      `json:"connection_id"`
	Epoch        uint64         `json:"epoch"`
	Reset        bool           `json:"reset"`
	Previous     *previousUsage `json:"previous"`
}

type previousUsage struct {
	Epoch   uint64 `json:"epoch"`
	Used    int64  `json:"used"`
	RxBytes int64  `json:"rx_bytes"`
	TxBytes int64  `json:"tx_bytes"`
}

// deviceResponse answers GET /devices/{id}.
type deviceResponse struct {
	DeviceID uuid.UUID `json:"device_id"`
	Live     bool      `json:"live"`
}

// revokeResponse answers POST /gateway/revoke.
type revokeResponse struct {
	ConnectionID uuid.UUID `json:"connection_id"`
}

// killResponse answers POST /openvpn/kill.
type killResponse struct {
	CommonName string `json:"common_name"`
	Killed     int    `json:"killed"`
}
