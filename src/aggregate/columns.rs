//! Typed views of Arrow columns: every string encoding the contract allows, every timestamp
//! unit, any numeric type. Low-cardinality text (experiment, variant, event) is mapped through a
//! dictionary once per batch when the column is dictionary-encoded.

use arrow::array::{Array, AsArray, GenericStringArray, StringViewArray};
use arrow::datatypes::{
    DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

use super::error::AggregateError;

/// Read access to one text column, whatever its physical encoding.
pub(super) enum Text<'a> {
    Utf8(&'a GenericStringArray<i32>),
    Large(&'a GenericStringArray<i64>),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    /// A plain (non-dictionary) text column.
    pub(super) fn plain(array: &'a dyn Array) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => Some(Text::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Some(Text::Large(array.as_string::<i64>())),
            DataType::Utf8View => Some(Text::View(array.as_string_view())),
            _ => None,
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Text::Utf8(a) => a.len(),
            Text::Large(a) => a.len(),
            Text::View(a) => a.len(),
        }
    }

    /// The value at `row`, or `None` when null.
    #[inline]
    pub(super) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Text::Large(a) => a.is_valid(row).then(|| a.value(row)),
            Text::View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// Maps each row of a text column through `code`, evaluating `code` once per distinct
/// dictionary value when the column is dictionary-encoded. Nulls map to `None`.
pub(super) fn text_codes<T: Copy>(
    column: &str,
    array: &dyn Array,
    mut code: impl FnMut(&str) -> Option<T>,
) -> Result<Vec<Option<T>>, AggregateError> {
    if let Some(dictionary) = array.as_any_dictionary_opt() {
        let values = Text::plain(dictionary.values().as_ref()).ok_or_else(|| unexpected(column, array))?;
        let value_codes: Vec<Option<T>> = (0..values.len()).map(|i| values.get(i).and_then(&mut code)).collect();
        let keys = dictionary.normalized_keys();
        return Ok((0..array.len())
            .map(|row| if array.is_valid(row) { value_codes.get(keys[row]).copied().flatten() } else { None })
            .collect());
    }
    let text = Text::plain(array).ok_or_else(|| unexpected(column, array))?;
    Ok((0..text.len()).map(|row| text.get(row).and_then(&mut code)).collect())
}

/// A unit id: text or integer, borrowed from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKey<'a> {
    Text(&'a str),
    Int(i64),
}

/// Read access to a unit id column.
pub(super) enum UnitIds<'a> {
    Text(Text<'a>),
    /// Dictionary-encoded text: keys resolved once per batch.
    DictText {
        keys: Vec<usize>,
        values: Text<'a>,
        array: &'a dyn Array,
    },
    Int64(&'a arrow::array::Int64Array),
    Int32(&'a arrow::array::Int32Array),
}

impl<'a> UnitIds<'a> {
    pub(super) fn new(column: &str, array: &'a dyn Array) -> Result<Self, AggregateError> {
        if let Some(dictionary) = array.as_any_dictionary_opt() {
            let values = Text::plain(dictionary.values().as_ref()).ok_or_else(|| unexpected(column, array))?;
            return Ok(UnitIds::DictText { keys: dictionary.normalized_keys(), values, array });
        }
        match array.data_type() {
            DataType::Int64 => Ok(UnitIds::Int64(array.as_primitive::<Int64Type>())),
            DataType::Int32 => Ok(UnitIds::Int32(array.as_primitive::<Int32Type>())),
            _ => Text::plain(array).map(UnitIds::Text).ok_or_else(|| unexpected(column, array)),
        }
    }

    pub(super) fn is_text(&self) -> bool {
        matches!(self, UnitIds::Text(_) | UnitIds::DictText { .. })
    }

    #[inline]
    pub(super) fn get(&self, row: usize) -> Option<UnitKey<'a>> {
        match self {
            UnitIds::Text(text) => text.get(row).map(UnitKey::Text),
            UnitIds::DictText { keys, values, array } => {
                if array.is_valid(row) {
                    values.get(keys[row]).map(UnitKey::Text)
                } else {
                    None
                }
            }
            UnitIds::Int64(a) => a.is_valid(row).then(|| UnitKey::Int(a.value(row))),
            UnitIds::Int32(a) => a.is_valid(row).then(|| UnitKey::Int(i64::from(a.value(row)))),
        }
    }
}

/// Microseconds since the Unix epoch for each row (`None` when null). Time-zone-aware and naive
/// timestamps are both stored as UTC instants by Arrow, so the zone needs no handling here.
pub(super) fn timestamps_micros(column: &str, array: &dyn Array) -> Result<Vec<Option<i64>>, AggregateError> {
    fn scaled<T: arrow::datatypes::ArrowPrimitiveType<Native = i64>>(
        array: &dyn Array,
        to_micros: impl Fn(i64) -> i64,
    ) -> Vec<Option<i64>> {
        array.as_primitive::<T>().iter().map(|v| v.map(&to_micros)).collect()
    }
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            Ok(scaled::<TimestampSecondType>(array, |s| s.saturating_mul(1_000_000)))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Ok(scaled::<TimestampMillisecondType>(array, |ms| ms.saturating_mul(1_000)))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => Ok(scaled::<TimestampMicrosecondType>(array, |us| us)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Ok(scaled::<TimestampNanosecondType>(array, |ns| ns.div_euclid(1_000)))
        }
        _ => Err(unexpected(column, array)),
    }
}

/// Each row as f64 (`None` when null); NaN and infinities are kept as they are.
pub(super) fn numbers(column: &str, array: &dyn Array) -> Result<Vec<Option<f64>>, AggregateError> {
    if array.data_type() == &DataType::Float64 {
        return Ok(array.as_primitive::<Float64Type>().iter().collect());
    }
    if !array.data_type().is_numeric() {
        return Err(unexpected(column, array));
    }
    let cast = arrow::compute::cast(array, &DataType::Float64).map_err(|_| unexpected(column, array))?;
    Ok(cast.as_primitive::<Float64Type>().iter().collect())
}

fn unexpected(column: &str, array: &dyn Array) -> AggregateError {
    AggregateError::ColumnType { column: column.to_string(), found: array.data_type().to_string() }
}
