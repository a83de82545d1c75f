//! One page of a list on the wire, `{data, next_cursor, has_more}`, declared
//! once: [`page_type!`] names each list's type (the spec's `OrgList`,
//! `ApiKeyList`, …) and converts a domain [`Page`](crate::kernel::page::Page)
//! of its items into it.

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
