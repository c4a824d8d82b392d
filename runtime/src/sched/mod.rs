//! Noise schedules. LTX-Video uses diffusers' `FlowMatchEulerDiscreteScheduler`
//! driven by `LTXConditionPipeline`; [`flow_match`] reproduces both.

pub mod flow_match;

pub use flow_match::{
    FlowMatchConfig, Schedule, SchedulerError, TimeShift, linear_quadratic_schedule,
};
