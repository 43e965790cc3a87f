# %% [markdown]
# # KL estimators, numerically
#
# Inline math $\beta$ and \(k_3\) and display:
#
# $$
# k_3 = r - 1 - \log r
# $$

# %%
import torch
print(torch.__version__)
