//! Delivery: workers per destination that lease due deliveries, re-check the
//! policy, render, send within the registry's limits, and record the outcome
//! with its audit event.

pub mod transports;
