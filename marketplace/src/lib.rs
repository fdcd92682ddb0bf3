//! The Marketplace web app (in progress).
