//! The OpenAI JSON extractor: a request body parsed with serde, unknown
//! fields kept, and errors in OpenAI's shape inside Switchyard's envelope.

use poem::{IntoResponse, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, ErrorCode};

/// A JSON body parsed with serde, so fields the type does not name are kept
/// (for pass-through) instead of rejected; the spec shows `T`'s schema.
pub struct OpenAiJson<T>(pub T);

impl<T: Type> Payload for OpenAiJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: DeserializeOwned + Send> ParsePayload for OpenAiJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as poem::FromRequest>::from_request(request, body).await?;
        serde_json::from_slice(&data).map(OpenAiJson).map_err(|err| {
            let api = if err.is_syntax() || err.is_eof() {
                ApiError::new(ErrorCode::RequestMalformed, format!("The body is not valid JSON: {err}"))
            } else {
                ApiError::new(ErrorCode::GatewayInvalidRequest, format!("Invalid request body: {err}"))
            };
            // The error's own extensions replace the response's, so the
            // marker that it is already enveloped goes on the error.
            let mut err = poem::Error::from_response(api.into_response());
            err.set_data(crate::http::error::Enveloped);
            err
        })
    }
}

impl<'a, T: Type + DeserializeOwned + Send> ApiExtractor<'a> for OpenAiJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        Some(poem_openapi::registry::MetaRequest {
            description: None,
            content: vec![MetaMediaType { content_type: Self::CONTENT_TYPE, schema: Self::schema_ref() }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if Self::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                content_type: content_type.to_owned(),
            }
            .into()),
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}
