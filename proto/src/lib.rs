//! The Recommendations gRPC API shared by both services.
//!
//! `recommendations.proto` is the seed's proto, wire-compatible with the Python tutorial: it has no
//! `package`, so the method path is `/Recommendations/Recommend` and the generated module is `_`.
//! Bookshop added one field, `BookRecommendation.author = 3`, which old clients skip. Bookshop's
//! own API is in a file and package of its own ([`catalog`]), so the seed's stays as it is.
//! At the root: the generated messages ([`BookCategory`], …), [`recommendations_client`] and
//! [`recommendations_server`], then [`FILE_DESCRIPTOR_SET`] for reflection and [`code_name`].

#![allow(unreachable_pub, missing_debug_implementations)]

mod generated {
    #![allow(clippy::all, clippy::unwrap_used)]
    tonic::include_proto!("_");
}

pub use generated::*;

/// Bookshop's own API (package `bookshop.catalog.v1`): the catalog in service and its changes.
pub mod catalog {
    #![allow(clippy::all, clippy::unwrap_used)]
    tonic::include_proto!("bookshop.catalog.v1");
}

/// Both protos' `FileDescriptorSet`, for server reflection: grpcurl works without the files.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("bookshop_descriptor");

/// The fully qualified gRPC service name (`Recommendations`, as the proto has no package).
pub const SERVICE_NAME: &str = "Recommendations";

pub const MAX_CATEGORY_KEY_CHARS: usize = 40;
/// The most books a page shows: of those a reload added, the ids told; of those a page keeps.
pub const MAX_PAGE_BOOKS: usize = 50;

/// Whether `key` can name a category: snake_case (ASCII lower-case letters, digits and `_`, a
/// letter first), at most [`MAX_CATEGORY_KEY_CHARS`] long. The one rule for both services: for
/// `catalog.toml`'s keys, `?category=` and `homepage.category`.
pub fn is_category_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.len() <= MAX_CATEGORY_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl BookCategory {
    /// Every category, in enum order.
    pub const ALL: [BookCategory; 3] =
        [BookCategory::Mystery, BookCategory::ScienceFiction, BookCategory::SelfHelp];

    /// The snake_case name used in `catalog.toml`, in URLs and in configuration.
    pub fn key(self) -> &'static str {
        match self {
            BookCategory::Mystery => "mystery",
            BookCategory::ScienceFiction => "science_fiction",
            BookCategory::SelfHelp => "self_help",
        }
    }

    /// Parses a snake_case key as written in `catalog.toml` (exact match).
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// The shop's English and Russian names for the seed's categories, when a catalog has none.
    pub fn names(self) -> [&'static str; 2] {
        match self {
            BookCategory::Mystery => ["Mystery", "Детективы"],
            BookCategory::ScienceFiction => ["Science fiction", "Фантастика"],
            BookCategory::SelfHelp => ["Self-help", "Саморазвитие"],
        }
    }
}

/// A status code's canonical upper-case name (`NOT_FOUND`, …), as both services' metrics say it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
