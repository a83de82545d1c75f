//! Keyset pagination shared by every list: a page of items and the cursor
//! to continue after.

/// One page of a keyset-paginated list.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to continue after, when more items follow.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with each item converted, such as rows to wire types.
    pub fn map<U>(self, convert: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(convert).collect(), next_cursor: self.next_cursor }
    }

    /// Builds a page from up to `limit + 1` rows fetched in id order: the
    /// extra row only says that another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> &str) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more { rows.last().map(|row| id(row).to_owned()) } else { None };
        Self { items: rows, next_cursor }
    }
}
