use napi::{Error, Status};

/// Redis errors as JS errors. Redis error texts carry no credentials (addresses at most).
pub fn to_napi(e: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}
