"""The app's own embedding profile: its vectors' contract, declared by the app, not the runtime."""

from embedding_runtime import ProfileContract, register_profile

POCKET_MINI_V1 = register_profile(
    ProfileContract(
        profile_id="pocket-mini-v1",
        dimension=384,
        matryoshka_dims=(128, 384),
        pooling="mean",
        max_tokens=256,
    )
)
