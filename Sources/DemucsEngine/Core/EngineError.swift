/// An error from the engine: a model file that cannot be used, a configuration that is not
/// supported, or an input the model cannot take. The message is meant for a person.
public struct EngineError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, broadly; callers switch on it to choose an exit code.
    public enum Kind: Sendable, Equatable {
        case modelNotFound
        case invalidModelFile
        case unsupportedModel
        case invalidArgument
        case cancelled
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
