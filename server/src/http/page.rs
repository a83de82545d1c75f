//! Pages of a list on the wire, declared once: the two query parameters
//! every list takes, [`PageSize`] (`limit`) and [`PageCursor`] (`cursor`),
//! and the answer `{data, next_cursor, has_more}`, for which [`page_type!`]
//! names each list's type (the spec's `OrgList`, `ApiKeyList`, …) and
//! converts a domain [`Page`](crate::kernel::page::Page) of its items into it.

use poem::{Request, RequestBody};
use poem_openapi::error::ParseParamError;
use poem_openapi::param::Query;
use poem_openapi::registry::{MetaParamIn, MetaSchema, MetaSchemaRef};
use poem_openapi::types::Type;
use poem_openapi::validation::{Maximum, Minimum, Validator, ValidatorMeta};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// Declares `$name`, one page of `$item`s on the wire, and `From<Page<$item>>`.
macro_rules! page_type {
    ($(#[$doc:meta])* $name:ident of $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, poem_openapi::Object)]
        pub struct $name {
            pub data: Vec<$item>,
            #[oai(nullable)]
            pub next_cursor: Option<String>,
            pub has_more: bool,
        }

        impl From<$crate::kernel::page::Page<$item>> for $name {
            fn from(page: $crate::kernel::page::Page<$item>) -> Self {
                Self { has_more: page.next_cursor.is_some(), next_cursor: page.next_cursor, data: page.items }
            }
        }
    };
}
pub(crate) use page_type;

/// `limit`: how many items a page holds, 1 to 200, 50 when not asked.
///
/// An extractor of its own rather than `Query<Option<u32>>` with a validator
/// on every operation: the bounds, the default and the error for a size out
/// of them are written here once. It refuses what poem-openapi's `minimum`
/// and `maximum` validators refuse, with their words, and documents the same
/// schema: `{type: integer, format: uint32, minimum: 1, maximum: 200}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 200;
    pub const DEFAULT: Self = Self(50);

    /// The size as the stores take it.
    pub fn get(self) -> i64 {
        i64::from(self.0)
    }

    fn bounds() -> (Minimum, Maximum) {
        (Minimum::new(f64::from(Self::MIN), false), Maximum::new(f64::from(Self::MAX), false))
    }

    /// A size that was asked for, or the validator it fails.
    fn checked(size: u32) -> Result<Self, String> {
        let (minimum, maximum) = Self::bounds();
        if !minimum.check(&size) {
            Err(minimum.to_string())
        } else if !maximum.check(&size) {
            Err(maximum.to_string())
        } else {
            Ok(Self(size))
        }
    }
}

impl<'a> ApiExtractor<'a> for PageSize {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];

    type ParamType = Option<u32>;
    type ParamRawType = u32;

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        let mut schema = MetaSchema::new_with_format("integer", "uint32");
        let (minimum, maximum) = Self::bounds();
        minimum.update_meta(&mut schema);
        maximum.update_meta(&mut schema);
        Some(MetaSchemaRef::Inline(Box::new(schema)))
    }

    fn param_raw_type(&self) -> Option<&u32> {
        Some(&self.0)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Option<u32>>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        let Query(asked) = Query::<Option<u32>>::from_request(request, body, param_opts).await?;
        match asked {
            None => Ok(Self::DEFAULT),
            Some(size) => Self::checked(size).map_err(|validator| {
                ParseParamError { name, reason: format!("verification failed. {validator}") }.into()
            }),
        }
    }
}

/// `cursor`: the previous page's `next_cursor`, opaque to the client. Each
/// list reads its own cursors; a string no page returned gets whatever that
/// list makes of it. An empty one (`?cursor=`, as a client that fills in a
/// `null` `next_cursor` sends) asks for the first page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCursor(Option<String>);

impl PageCursor {
    /// The cursor to continue after; `None` for the first page.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'a> ApiExtractor<'a> for PageCursor {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];

    type ParamType = Option<String>;
    type ParamRawType = String;

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(String::schema_ref())
    }

    fn param_raw_type(&self) -> Option<&String> {
        self.0.as_ref()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Option<String>>,
    ) -> poem::Result<Self> {
        Query::<Option<String>>::from_request(request, body, param_opts)
            .await
            .map(|Query(cursor)| Self(cursor.filter(|cursor| !cursor.is_empty())))
    }
}
