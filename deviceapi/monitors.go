package deviceapi

import (
	"context"
	"time"

	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// How heartbeats reach DeviceMonitors. Every heartbeat is recorded in the device's row; the
// monitor reads the row at its deadline, so only a heartbeat it cannot read for itself is
// signalled (workflows.MonitorMustHear). A monitor that no longer runs comes back with the
// next heartbeat of its device, or, for a device that went silent meanwhile, by the sweep.

// signalTimeout bounds how long a request waits for Temporal to accept a signal or start.
const signalTimeout = 5 * time.Second

// sweepBatch is the most monitors one sweep starts again.
const sweepBatch = 500

// signalHeartbeat hands a heartbeat to the device's DeviceMonitor, starting it if needed.
func (a *API) signalHeartbeat(ctx context.Context, dev store.DeviceRef, hb workflows.Heartbeat) error {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	_, err := a.cfg.Temporal.SignalWithStartWorkflow(ctx, workflows.DeviceMonitorID(dev.ID), workflows.HeartbeatSignal, hb,
		workflows.DeviceMonitorStart(dev.ID, dev.OperatorID, dev.Name), workflows.DeviceMonitorType, workflows.DeviceMonitorInput{
			DeviceID: dev.ID, OperatorID: dev.OperatorID, DeviceName: dev.Name, Config: a.cfg.Monitor,
		})
	return err
}

// SweepMonitors, every OfflineAfter until ctx ends, starts the monitors of online devices
// that went silent after their monitor stopped looking at their row (terminated from the
// CLI, lost with a Temporal namespace): no heartbeat of theirs would start it again, and the
// new monitor finds them past their deadline. A device's monitor counts as stopped when it
// has not looked for twice OfflineAfter, as in MonitorMustHear; the device as silent when its
// last heartbeat is older than OfflineAfter. Every API process sweeps; a monitor signalled
// twice takes the second as a no-op.
func (a *API) SweepMonitors(ctx context.Context) {
	offlineAfter := a.cfg.Monitor.OfflineAfter
	if offlineAfter <= 0 {
		offlineAfter = workflows.DefaultOfflineAfter
	}
	tick := time.NewTicker(offlineAfter)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		stale, err := a.cfg.Store.StaleMonitors(ctx, 2*offlineAfter, offlineAfter, sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("sweep device monitors", "err", err)
			}
			continue
		}
		for _, m := range stale {
			if err := a.signalHeartbeat(ctx, m.Device, workflows.Heartbeat{At: m.LastHeartbeatAt, Config: a.cfg.Monitor}); err != nil {
				a.log.Warn("restart device monitor", "device_id", m.Device.ID, "err", err)
			}
		}
		if len(stale) > 0 {
			a.log.Info("restarted device monitors that stopped", "devices", len(stale))
		}
	}
}
