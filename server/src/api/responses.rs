//! Success response wrappers that document the `X-Request-Id` header every
//! response carries (the header itself is set by the request-id middleware).

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use poem_openapi::types::{ToJSON, Type};

#[derive(Debug, ApiResponse)]
#[oai(header(name = "X-Request-Id", ty = "String", description = "The id of this request."))]
pub enum Ok200<T: ToJSON + Type + Send> {
    #[oai(status = 200)]
    Ok(Json<T>),
}

#[derive(Debug, ApiResponse)]
#[oai(header(name = "X-Request-Id", ty = "String", description = "The id of this request."))]
pub enum Created201<T: ToJSON + Type + Send> {
    #[oai(status = 201)]
    Created(Json<T>),
}

#[derive(Debug, ApiResponse)]
#[oai(header(name = "X-Request-Id", ty = "String", description = "The id of this request."))]
pub enum NoContent204 {
    #[oai(status = 204)]
    NoContent,
}

#[derive(Debug, ApiResponse)]
#[oai(header(name = "X-Request-Id", ty = "String", description = "The id of this request."))]
pub enum Accepted202<T: ToJSON + Type + Send> {
    #[oai(status = 202)]
    Accepted(Json<T>),
}
