//! The simulation's summary, printed for people or as JSON (`--json`).

use serde::Serialize;

/// One attack the simulator tried.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttackResult {
    /// What was tried (e.g. `"publish_to_another_devices_topic"`).
    pub name: String,
    /// Whether the platform refused it.
    pub refused: bool,
    /// Whether the refusal is in the audit log.
    pub audited: bool,
}

/// What happened to the fleet. Field names are an interface (`ironroot simulate --json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Devices asked for.
    pub devices: usize,
    /// Devices that got an operational certificate.
    pub provisioned: usize,
    /// Devices whose MQTT session came up.
    pub connected: usize,
    /// Telemetry messages acknowledged (PUBACK success) at the devices.
    pub messages: u64,
    /// Failed steps (enrollment, connection, publish, refused PUBACK), all devices together.
    pub failures: u64,
    /// Median PUBACK latency of telemetry, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile PUBACK latency, milliseconds.
    pub p99_ms: f64,
    /// Median time from power-on to the MQTT session being up, milliseconds.
    pub connect_p50_ms: f64,
    /// 99th percentile of the same.
    pub connect_p99_ms: f64,
    /// Devices per second from power-on to first telemetry, over the whole run.
    pub devices_per_second: f64,
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// Devices that booted through secure boot and whose boot report the server accepted
    /// (0 with secure boot off).
    pub booted: usize,
    /// The firmware version the fleet booted (empty with secure boot off).
    pub firmware_version: String,
    /// Attack scenario results (empty without `--scenario attacks`).
    pub attacks: Vec<AttackResult>,
    /// The first few distinct failure messages, for diagnosis (no secrets: device errors
    /// never carry tokens or keys).
    pub failure_samples: Vec<String>,
}

/// The `q` quantile (0..=1) of `sorted` microsecond samples, in milliseconds.
pub(crate) fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    let us = sorted[rank.min(sorted.len() - 1)];
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

impl Report {
    /// The summary for people.
    pub fn human(&self) -> String {
        let mut out = format!(
            "devices {}: provisioned {}, connected {}, telemetry acknowledged {}, failures {}\n\
             PUBACK latency p50 {:.2} ms, p99 {:.2} ms; power-on to connected p50 {:.0} ms, p99 {:.0} ms\n\
             {:.1} devices/s from power-on to first telemetry; {:.1} s in all\n\
             secure boot: {} devices booted firmware {} and reported it\n",
            self.devices,
            self.provisioned,
            self.connected,
            self.messages,
            self.failures,
            self.p50_ms,
            self.p99_ms,
            self.connect_p50_ms,
            self.connect_p99_ms,
            self.devices_per_second,
            self.elapsed_s,
            self.booted,
            if self.firmware_version.is_empty() {
                "-"
            } else {
                &self.firmware_version
            },
        );
        for a in &self.attacks {
            out.push_str(&format!(
                "attack {:<45} refused: {:<5} audited: {}\n",
                a.name, a.refused, a.audited
            ));
        }
        for f in &self.failure_samples {
            out.push_str(&format!("failure: {f}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_ranks() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 51.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
