//! Success response wrappers that document the `X-Request-Id` header every
//! response carries and the `X-RateLimit-*` headers of requests that present
//! a credential (both set by middleware).

use poem_openapi::payload::Json;
use poem_openapi::types::{ToJSON, Type};

/// Derives `ApiResponse` for `$item`, documenting the headers every
/// response may carry. Success responses with more than one status use it
/// directly; [`success_response!`] builds the one-status ones.
#[macro_export]
macro_rules! with_response_headers {
    ($item:item) => {
        #[derive(Debug, poem_openapi::ApiResponse)]
        #[oai(
            header(name = "X-Request-Id", ty = "String", description = "The id of this request."),
            header(
                name = "X-RateLimit-Limit",
                ty = "Option<u64>",
                description = "Requests the credential may send in the window; sent when the request presents a credential."
            ),
            header(name = "X-RateLimit-Remaining", ty = "Option<u64>", description = "Requests left in the window."),
            header(
                name = "X-RateLimit-Reset",
                ty = "Option<u64>",
                description = "Seconds until the window starts afresh."
            )
        )]
        $item
    };
}

/// A success response with one status.
macro_rules! success_response {
    ($name:ident $(<$payload:ident>)?, $status:literal, $variant:ident $(($body:ty))?) => {
        $crate::with_response_headers! {
            pub enum $name $(<$payload: ToJSON + Type + Send>)? {
                #[oai(status = $status)]
                $variant $(($body))?,
            }
        }
    };
}

success_response!(Ok200<T>, 200, Ok(Json<T>));
success_response!(Created201<T>, 201, Created(Json<T>));
success_response!(Accepted202<T>, 202, Accepted(Json<T>));
success_response!(NoContent204, 204, NoContent);
