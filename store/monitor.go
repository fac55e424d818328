package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// A device's row is the record its DeviceMonitor decides on. Two writers share it, and
// Postgres's row lock orders them:
//
//   - the API's heartbeat statement (RecordHeartbeat) stamps last_heartbeat_at, keeps the one
//     before in previous_heartbeat_at, and reads in the same statement what the monitor last
//     wrote: status, when it last looked (monitor_checked_at) and with which clocks;
//   - the monitor's deadline check (CheckHeartbeat), for the deadline D = seen + OfflineAfter
//     of the last heartbeat it knows (seen), reads last_heartbeat_at and in the same statement
//     marks the device offline as of D if no heartbeat came after seen.
//
// A heartbeat's time is clock_timestamp() taken while its UPDATE holds the row (an UPDATE
// that waited for the row's lock recomputes its new row after the wait), so heartbeats are
// stamped in the order they commit, and one that commits after the check is stamped after it,
// hence after D. The API signals a heartbeat when the row's status is not "online" or when it
// ends a silence longer than OfflineAfter (last − previous > OfflineAfter). Why no interleaving
// loses a recovery or an outage, or makes a false offline — one statement commits first:
//
//   - The check first, no heartbeat after seen: offline as of D, correct since the device was
//     silent from seen to D. The next heartbeat's statement returns "offline", so the API
//     signals it and the monitor records the return; if that signal fails the device gets 503
//     and its retry, finding "offline" again, signals again.
//   - A heartbeat h after seen first: the check marks nothing and the monitor moves its
//     deadline to h + OfflineAfter. If the silence before h was longer than OfflineAfter (the
//     check ran late), that heartbeat's statement saw the gap and the API signalled h with
//     the previous heartbeat: the monitor records the outage, offline as of previous +
//     OfflineAfter, and the return at h.
//
// Every silence longer than OfflineAfter between two recorded heartbeats is thus recorded
// exactly once: by the check when it runs before the silence ends, else by the heartbeat that
// ends it. And no device is marked offline while a heartbeat after seen is in the row. The
// API never needs to tell the monitor of any other heartbeat: the monitor reads it at its
// deadline.

// MonitorConfig is the clocks a DeviceMonitor runs with.
type MonitorConfig struct {
	// OfflineAfter: a device is offline this long after its last heartbeat.
	OfflineAfter time.Duration
	// Cooldown: the least time between two offline alerts of one device.
	Cooldown time.Duration
}

// HeartbeatRecord is what a heartbeat's statement wrote and found.
type HeartbeatRecord struct {
	Device DeviceRef
	// At is the heartbeat's recorded time (devices.last_heartbeat_at).
	At time.Time
	// Previous is the device's heartbeat before this one; nil for its first.
	Previous *time.Time
	// MonitorStatus is the status the device's monitor last wrote (StatusUnknown before it
	// wrote any).
	MonitorStatus DeviceStatus
	// MonitorCheckedAt is when the monitor last looked at the row; nil if it never did.
	MonitorCheckedAt *time.Time
	// MonitorSignalledAt is when the API last delivered a heartbeat signal (MarkSignalled);
	// nil if never.
	MonitorSignalledAt *time.Time
	// MonitorConfig is the clocks the monitor last ran with; zero if it never wrote them.
	MonitorConfig MonitorConfig
}

// RecordHeartbeat stores a heartbeat of the device whose token has this hash, its time and
// the telemetry it carried, and returns what the device's monitor last wrote. An unknown token
// (or a deleted device's) is ErrNotFound.
//
// Its commit does not wait for the WAL flush (synchronous_commit off for this statement's own
// transaction, set in the same round trip): about 3x the heartbeats on this machine's disk
// (BENCHMARKS.md). What a Postgres crash can then lose, and why that is safe:
//
//   - Only heartbeats that committed in the last few hundred milliseconds before the crash
//     (3 × wal_writer_delay at most) and that no synchronous commit followed. The monitor's
//     own writes (CheckHeartbeat, RecordDeviceStatus) commit synchronously, and WAL is flushed
//     in order, so every heartbeat the monitor ever read and acted on is durable by then.
//   - A lost heartbeat leaves last_heartbeat_at at the device's previous one (and the next
//     heartbeat's silence one interval longer). A device that
//     keeps heartbeating is recorded again one interval later (30 s), long before its deadline
//     (OfflineAfter, 2 min): no false offline, unless Postgres stays down for longer than
//     OfflineAfter minus the interval. A device that stopped right at the crash is found
//     offline up to one interval early, its alert naming the heartbeat that survived. No
//     offline is ever late: losing a heartbeat only moves the record back.
//   - A recovery is never lost: a heartbeat that found "offline" is signalled to the monitor
//     before the device hears 204, and Temporal keeps the signal.
func (s *Store) RecordHeartbeat(ctx context.Context, tokenHash []byte, t Telemetry) (HeartbeatRecord, error) {
	var r HeartbeatRecord
	var offlineAfter, cooldown *int64
	err := s.pool.QueryRow(ctx,
		`UPDATE devices SET previous_heartbeat_at = last_heartbeat_at,
		     last_heartbeat_at = greatest(last_heartbeat_at, clock_timestamp()),
		     battery = $2, charging = $3, signal_dbm = $4,
		     carrier = $5, network_type = $6, cellular_ip = $7, app_version = $8
		 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
		 WHERE token_hash = $1
		 RETURNING id, operator_id, name, last_heartbeat_at, previous_heartbeat_at, status, monitor_checked_at,
		     monitor_signalled_at, monitor_offline_after_ms, monitor_cooldown_ms`,
		tokenHash, t.Battery, t.Charging, t.SignalDBM, t.Carrier, t.NetworkType, t.CellularIP, t.AppVersion,
	).Scan(&r.Device.ID, &r.Device.OperatorID, &r.Device.Name, &r.At, &r.Previous, &r.MonitorStatus, &r.MonitorCheckedAt,
		&r.MonitorSignalledAt, &offlineAfter, &cooldown)
	if err != nil {
		return HeartbeatRecord{}, notFound(err)
	}
	r.MonitorConfig = configFromMillis(offlineAfter, cooldown)
	return r, nil
}

// MarkSignalled records that the device's monitor was signalled a heartbeat recorded at the
// given time, so the API need not signal again until the monitor has looked. Like a heartbeat
// it does not wait for the WAL flush: losing it costs one more signal.
func (s *Store) MarkSignalled(ctx context.Context, deviceID uuid.UUID, at time.Time) error {
	_, err := s.pool.Exec(ctx,
		`UPDATE devices SET monitor_signalled_at = greatest(monitor_signalled_at, $2)
		 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
		 WHERE id = $1`, deviceID, at)
	if err != nil {
		return fmt.Errorf("mark monitor signalled: %w", err)
	}
	return nil
}

// DeadlineCheck is a DeviceMonitor's look at its device's row.
type DeadlineCheck struct {
	DeviceID uuid.UUID
	// Seen is the last heartbeat the monitor knows of.
	Seen time.Time
	// Deadline, when set, is Seen + OfflineAfter, passed: mark the device offline as of it
	// unless a heartbeat came after Seen. Nil: only look (and stamp).
	Deadline *time.Time
	// Config is recorded as the clocks the monitor runs with.
	Config MonitorConfig
}

// CheckResult is what CheckHeartbeat found.
type CheckResult struct {
	// LastHeartbeat is the device's recorded last heartbeat (zero if it never sent one).
	LastHeartbeat time.Time
	// Offline: the device was marked offline as of the deadline (and the transition
	// recorded); LastHeartbeat is then no later than Seen.
	Offline bool
}

// CheckHeartbeat reads the device's last heartbeat and, when in.Deadline is set and no
// heartbeat came after Seen, marks it offline as of the deadline with its
// device_status_events row, in one statement (see the top of this file for why that
// statement is the whole protocol). It stamps monitor_checked_at and the monitor's clocks.
// Repeating it gives the same result, writing the event once. A deleted device is
// ErrNotFound.
func (s *Store) CheckHeartbeat(ctx context.Context, in DeadlineCheck) (CheckResult, error) {
	var last *time.Time
	var res CheckResult
	err := s.pool.QueryRow(ctx,
		`WITH d AS (
		     UPDATE devices SET monitor_checked_at = clock_timestamp(),
		         monitor_offline_after_ms = $4, monitor_cooldown_ms = $5,
		         status = CASE WHEN `+missedDeadline+` THEN 'offline' ELSE status END,
		         status_changed_at = CASE WHEN `+missedDeadline+` THEN $3 ELSE status_changed_at END
		     WHERE id = $1
		     RETURNING operator_id, last_heartbeat_at, `+missedDeadline+` AS offline),
		 e AS (
		     INSERT INTO device_status_events (device_id, operator_id, status, occurred_at)
		     SELECT $1, operator_id, 'offline', $3 FROM d WHERE offline
		     ON CONFLICT (device_id, status, occurred_at) DO NOTHING)
		 SELECT last_heartbeat_at, offline FROM d`,
		in.DeviceID, in.Seen, in.Deadline, in.Config.OfflineAfter.Milliseconds(), in.Config.Cooldown.Milliseconds(),
	).Scan(&last, &res.Offline)
	if err != nil {
		return CheckResult{}, notFound(err)
	}
	if last != nil {
		res.LastHeartbeat = *last
	}
	return res, nil
}

// missedDeadline is CheckHeartbeat's condition ($2 seen, $3 the deadline): a deadline was
// given and no heartbeat was recorded after seen. A last heartbeat before seen means
// Postgres lost the newest (see RecordHeartbeat): the device has been silent since an earlier
// one, and seen stands.
const missedDeadline = `($3::timestamptz IS NOT NULL AND (last_heartbeat_at IS NULL OR last_heartbeat_at <= $2))`

// MonitorStart is what a DeviceMonitor that starts without a predecessor's state reads of its
// device: the row and the device's alerts so far.
type MonitorStart struct {
	Status          DeviceStatus
	StatusChangedAt *time.Time
	LastHeartbeatAt *time.Time
	// LastOfflineAlert is when the device's latest offline alert was issued; nil if none.
	LastOfflineAlert *time.Time
	// LastAlert is the type of the device's latest offline or online alert; "" if none.
	LastAlert string
}

// DeviceMonitorStart reads what a starting monitor needs to go on where a lost one stopped:
// the device's row and, from the delivery log, its latest alerts of the two types given (ids
// are UUIDv7 made when an alert is issued, so id order is issue order). A deleted device is
// ErrNotFound.
func (s *Store) DeviceMonitorStart(ctx context.Context, deviceID uuid.UUID, offlineType, onlineType string) (MonitorStart, error) {
	var m MonitorStart
	var lastAlert *string
	err := s.pool.QueryRow(ctx,
		`SELECT d.status, d.status_changed_at, d.last_heartbeat_at,
		     (SELECT (w.payload->>'timestamp')::timestamptz FROM webhook_deliveries w
		      WHERE w.operator_id = d.operator_id AND w.device_id = d.id AND w.event_type = $2
		      ORDER BY w.id DESC LIMIT 1),
		     (SELECT w.event_type FROM webhook_deliveries w
		      WHERE w.operator_id = d.operator_id AND w.device_id = d.id AND w.event_type IN ($2, $3)
		      ORDER BY w.id DESC LIMIT 1)
		 FROM devices d WHERE d.id = $1`,
		deviceID, offlineType, onlineType,
	).Scan(&m.Status, &m.StatusChangedAt, &m.LastHeartbeatAt, &m.LastOfflineAlert, &lastAlert)
	if err != nil {
		return MonitorStart{}, notFound(err)
	}
	if lastAlert != nil {
		m.LastAlert = *lastAlert
	}
	return m, nil
}

// StaleMonitor is an online device whose monitor has not looked at its row for a while.
type StaleMonitor struct {
	Device          DeviceRef
	LastHeartbeatAt time.Time
}

// StaleMonitors lists at most limit online devices whose monitor has not looked at their row
// for longer than stopped (or never), silent for longer than silent: monitors that no longer
// run, of devices whose heartbeats will not start them again. Both ages count on Postgres's
// clock, which stamped them.
func (s *Store) StaleMonitors(ctx context.Context, stopped, silent time.Duration, limit int) ([]StaleMonitor, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT id, operator_id, name, last_heartbeat_at FROM devices
		 WHERE status = 'online' AND last_heartbeat_at < now() - $2 * interval '1 millisecond'
		     AND (monitor_checked_at IS NULL OR monitor_checked_at < now() - $1 * interval '1 millisecond')
		 ORDER BY monitor_checked_at NULLS FIRST LIMIT $3`, stopped.Milliseconds(), silent.Milliseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("list stale monitors: %w", err)
	}
	defer rows.Close()
	var out []StaleMonitor
	for rows.Next() {
		var m StaleMonitor
		if err := rows.Scan(&m.Device.ID, &m.Device.OperatorID, &m.Device.Name, &m.LastHeartbeatAt); err != nil {
			return nil, fmt.Errorf("scan stale monitor: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func configFromMillis(offlineAfter, cooldown *int64) MonitorConfig {
	var c MonitorConfig
	if offlineAfter != nil {
		c.OfflineAfter = time.Duration(*offlineAfter) * time.Millisecond
	}
	if cooldown != nil {
		c.Cooldown = time.Duration(*cooldown) * time.Millisecond
	}
	return c
}
