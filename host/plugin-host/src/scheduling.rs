//! Instance schedules: setting, enabling and planning them, and the loop that starts the
//! runs they ask for.

use std::sync::Arc;

use crate::registry::{Instance, InstanceSchedule, Trigger};
use rapport_schedule::{Plan, Schedule};

use crate::{PluginHost, PluginHostError, registry};

impl PluginHost {
    /// Puts an instance on the scheduler (from its persisted plan) or takes it off. A
    /// stored schedule this host cannot read is logged and left off, not fatal.
    pub(crate) fn schedule(&self, instance: &Instance) -> Result<(), PluginHostError> {
        match instance.schedule.as_ref().filter(|_| instance.enabled) {
            None => self.scheduler.remove(&instance.name),
            Some(spec) => match Schedule::parse(&spec.cron, &spec.timezone) {
                Ok(schedule) => {
                    let plan = registry::plan_key(&instance.name).get(&*self.ledger)?.unwrap_or_default();
                    self.scheduler.set(instance.name.clone(), schedule, plan);
                }
                Err(err) => tracing::warn!(instance = %instance.name, error = %err, "instance not scheduled"),
            },
        }
        Ok(())
    }

    /// Sets (or, with `None`, removes) an instance's schedule; it is planned from now.
    pub fn configure_schedule(&self, name: &str, schedule: Option<InstanceSchedule>) -> Result<Instance, PluginHostError> {
        if let Some(spec) = &schedule {
            Schedule::parse(&spec.cron, &spec.timezone)?;
        }
        let instance = Instance { schedule, ..self.instance(name)? };
        self.save_scheduled(&instance)
    }

    /// Enables or disables an instance's schedule.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<Instance, PluginHostError> {
        let instance = Instance { enabled, ..self.instance(name)? };
        self.save_scheduled(&instance)
    }

    /// Stores an instance whose schedule changed, with a fresh plan, and reschedules it.
    fn save_scheduled(&self, instance: &Instance) -> Result<Instance, PluginHostError> {
        self.ledger.write_meta(vec![registry::instance_key(&instance.name).put(instance), registry::plan_key(&instance.name).delete()])?;
        self.schedule(instance)?;
        Ok(instance.clone())
    }

    /// The schedule's plan of an instance: its next and last scheduled run.
    pub fn plan(&self, instance: &str) -> Option<Plan> {
        self.scheduler.plan(&instance.to_owned())
    }

    /// Runs the schedules until the process ends: each due instance starts a run (one
    /// that is still running from before skips its turn), and every new plan is stored,
    /// so a restart neither forgets a run nor repeats the ones missed while down.
    pub async fn run_schedules(self: Arc<Self>) {
        let host = Arc::clone(&self);
        self.scheduler
            .run(self.clock.as_ref(), move |changes| {
                let plans = changes.iter().map(|(instance, _, plan)| registry::plan_key(instance).put(plan)).collect();
                if let Err(err) = host.ledger.write_meta(plans) {
                    tracing::error!(error = %err, "cannot store the schedules' plans");
                }
                for (instance, _, _) in changes.into_iter().filter(|(_, due, _)| *due) {
                    match host.start(&instance, Trigger::Schedule) {
                        Ok(record) => tracing::info!(%instance, run_id = %record.id, "scheduled run started"),
                        Err(PluginHostError::AlreadyRunning(_)) => {
                            tracing::info!(%instance, "scheduled run skipped: the previous run is still going");
                        }
                        Err(err) => tracing::warn!(%instance, error = %err, "scheduled run not started"),
                    }
                }
            })
            .await;
    }
}
