//! Public projections of the store for the venue's website: computed once per change by the daemon, served
//! from memory or a file by the control API's public routes, never reaching SecuTix per page view.
//!
//! - [`availability`]: the availability document (`GET /public/availability`, and one product).
//!
//! Feeds to come (compact availability, `widget.js`, schema.org Event JSON-LD, iCal calendars) are one file
//! each here, fed by the daemon after each plan like [`availability::PublicSnapshot`]; see ARCHITECTURE.md.

pub mod availability;

pub use availability::{PublicPerformance, PublicProduct, PublicSnapshot};
