//! Why a batch could not be folded: the error every stage of the fold returns.

/// Why a batch could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("column `{column}` is {found}, which abreport cannot read here")]
    ColumnType { column: String, found: String },
    #[error(
        "column `{column}` holds {found} unit ids, but earlier files held {expected} ids; both datasets must use one type"
    )]
    UnitIdKind { column: String, expected: &'static str, found: &'static str },
    #[error("expected {expected} columns in a batch, got {found}")]
    Columns { expected: usize, found: usize },
}
